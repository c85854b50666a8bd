"""AWS cost per million bookings, counted from real executions on the local cloud.

Each path runs serially with moto's request recorder on, so every request the
execution caused is known: the interpreter's Lambda Invoke and SQS SendMessage
calls, and each handler's DynamoDB calls (attributed to the invocation they
follow). The history gives the states entered, the retries and each Lambda
invocation's span (LambdaFunctionStarted to Succeeded/Failed), billed as Lambda
bills: rounded up to the millisecond, at the function's configured memory.

Rules (us-east-1 on demand; prices in ``bench.prices``):
- Step Functions Standard: one transition per state entered, plus one per retry.
- DynamoDB: a transactional write costs 2 WRU per item per started KB, a plain
  write 1 WRU per started KB, a strongly consistent read 1 RRU per started 4 KB
  (0.5 if eventually consistent), a conditional write the same whether or not
  its condition holds. Put sizes come from the request; an Update, Delete or
  Get touches an item of this saga, all far under 1 KB (the largest written is
  reported), so it counts as one unit.
- SQS: one request per started 64 KB of message body.
- Accepting the booking (the bookings table's conditional write, and marking it
  started) happens around the execution's start; its requests, told apart by
  their table, are counted as ``AcceptBooking``, with no transition.
"""

import base64
import json
import math
import statistics
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from bench import prices
from bench.session import Session, booking
from saga.bookings import outcome_of

# Every path a booking can take through the saga, forced by its chaos section.
PATHS = {
    "happy": (None, "confirmed"),
    "fail_at_flight": ({"fail_at": "flight"}, "compensated"),
    "fail_at_hotel": ({"fail_at": "hotel"}, "compensated"),
    "fail_at_payment": ({"fail_at": "payment"}, "compensated"),
    "compensation_failed": ({"fail_at": "payment", "fail_cancel": "hotel"}, "parked"),
}
ACCEPT = "AcceptBooking"
_TASK_STARTS = ("LambdaFunctionScheduled", "TaskScheduled")
_LAMBDA_ENDS = ("LambdaFunctionSucceeded", "LambdaFunctionFailed", "LambdaFunctionTimedOut")
_SUMMED = (
    "state_transitions",
    "lambda_invocations",
    "lambda_billed_ms",
    "dynamodb_read_units",
    "dynamodb_write_units",
    "sqs_requests",
)


@dataclass
class StateUse:
    """What one entry into one state cost."""

    name: str
    state_transitions: int = 1
    lambda_invocations: int = 0
    lambda_billed_ms: int = 0
    dynamodb_read_units: float = 0
    dynamodb_write_units: int = 0
    sqs_requests: int = 0
    dynamodb_calls: Counter = field(default_factory=Counter)


def _recorder(session: Session, action: str) -> str:
    """moto's request recorder, through its server API (the recording file is ``MOTO_RECORDER_FILEPATH``).

    Both of the local cloud's processes record, DynamoDB's too (``table_process``), each request as it arrives,
    to the one file they share: a path runs one request at a time, so the file keeps their order."""
    if action == "download":
        url = f"{session.cloud.endpoint_url}/moto-api/recorder/download-recording"
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode()
    for endpoint_url in (session.cloud.endpoint_url, session.cloud.dynamodb_endpoint_url):
        request = urllib.request.Request(f"{endpoint_url}/moto-api/recorder/{action}-recording", method="POST")
        urllib.request.urlopen(request, timeout=30).close()
    return ""


def _recorded_requests(recording: str) -> list[tuple[str, str, dict]]:
    """(kind, target, JSON body) per recorded request; kind is lambda, dynamodb, sqs or other."""
    requests: list[tuple[str, str, dict]] = []
    for line in recording.splitlines():
        entry = json.loads(line)
        body = entry["body"] or ""
        if entry["body_encoded"]:
            body = base64.b64decode(body).decode()
        target = entry["headers"].get("X-Amz-Target", "")
        if "/functions/" in entry["url"] and entry["url"].endswith("/invocations"):
            function = unquote(entry["url"].split("/functions/")[1].removesuffix("/invocations"))
            requests.append(("lambda", function, {}))
        elif target.startswith("DynamoDB_"):
            requests.append(("dynamodb", target.partition(".")[2], json.loads(body or "{}")))
        elif target.startswith("AmazonSQS."):
            requests.append(("sqs", target.partition(".")[2], json.loads(body or "{}")))
        else:
            requests.append(("other", target, {}))
    return requests


def _item_bytes(item: dict) -> int:
    """A DynamoDB item's size as DynamoDB bills it: attribute names plus values (numbers approximated)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict) -> int:
    kind, content = next(iter(value.items()))
    if kind == "S":
        return len(content.encode())
    if kind == "N":  # 1 byte per 2 significant digits, plus 1
        return math.ceil(len(content.lstrip("-").replace(".", "").strip("0")) / 2) + 1
    if kind == "B":
        return len(base64.b64decode(content))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + _value_bytes(inner) + 1 for name, inner in content.items())
    if kind == "L":
        return 3 + sum(_value_bytes(inner) + 1 for inner in content)
    return sum(len(str(element).encode()) for element in content)  # SS, NS, BS


def _dynamodb_units(operation: str, body: dict, largest: list[int]) -> tuple[float, int]:
    """(read units, write units) of one DynamoDB request, by the rules in the module docstring."""

    def write_units(put: dict | None, per_kb: int) -> int:
        if put is None:
            return per_kb
        size = _item_bytes(put)
        largest.append(size)
        return per_kb * max(1, math.ceil(size / 1024))

    if operation == "GetItem":
        return (1.0 if body.get("ConsistentRead") else 0.5), 0
    if operation == "PutItem":
        return 0, write_units(body["Item"], 1)
    if operation in ("UpdateItem", "DeleteItem"):
        return 0, 1
    if operation == "TransactWriteItems":
        return 0, sum(write_units(entry.get("Put", {}).get("Item"), 2) for entry in body["TransactItems"])
    raise ValueError(f"the cost model has no rule for DynamoDB {operation}")


def _state_uses(
    history: list[dict], requests: list[tuple[str, str, dict]], largest: list[int], bookings_table: str
) -> list[StateUse]:
    """Each state entry's transitions, invocations and billed time (from the history), and requests (recorded)."""
    uses, callers = _from_history(history)
    calls = [(kind, target, body) for kind, target, body in requests if kind in ("lambda", "sqs")]
    if len(calls) != len(callers):
        raise RuntimeError(f"recorded {len(calls)} task calls, the history has {len(callers)}: cannot attribute")
    accept = StateUse(ACCEPT, state_transitions=0)
    current = accept  # before the first task call, only accepting the booking runs
    for kind, target, body in requests:
        if kind in ("lambda", "sqs"):
            current = callers.pop(0)
        if kind == "sqs":
            current.sqs_requests += max(1, math.ceil(len(body.get("MessageBody", "").encode()) / 65536))
        elif kind == "dynamodb":
            use = accept if body.get("TableName") == bookings_table else current
            reads, writes = _dynamodb_units(target, body, largest)
            use.dynamodb_read_units += reads
            use.dynamodb_write_units += writes
            use.dynamodb_calls[target] += 1
    return [accept, *uses]


def _from_history(history: list[dict]) -> tuple[list[StateUse], list[StateUse]]:
    """The state entries, and per Lambda or service-integration call, in order, the state that made it."""
    uses: list[StateUse] = []
    callers: list[StateUse] = []
    started = None
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            uses.append(StateUse(event["stateEnteredEventDetails"]["name"]))
        elif kind in _TASK_STARTS:
            if any(caller is uses[-1] for caller in callers):
                uses[-1].state_transitions += 1  # a retry is billed as a transition
            callers.append(uses[-1])
            uses[-1].lambda_invocations += kind == "LambdaFunctionScheduled"
        elif kind == "LambdaFunctionStarted":
            started = event["timestamp"]
        elif kind in _LAMBDA_ENDS:
            span_ms = (event["timestamp"] - started).total_seconds() * 1000
            uses[-1].lambda_billed_ms += max(1, math.ceil(span_ms))
    return uses, callers


def _totals(uses: list[StateUse], memory_mb: int) -> dict:
    totals = {name: sum(getattr(use, name) for use in uses) for name in _SUMMED}
    totals["lambda_gb_seconds"] = totals["lambda_billed_ms"] / 1000 * memory_mb / 1024
    return totals


def _dollars_per_million(totals: dict, architecture: str) -> dict:
    """US dollars per million bookings that cost ``totals`` each, per service and in all."""
    usd = {
        "step_functions": totals["state_transitions"] * prices.STATE_TRANSITION,
        "lambda_requests": totals["lambda_invocations"] * prices.LAMBDA_REQUEST,
        "lambda_duration": totals["lambda_gb_seconds"] * prices.LAMBDA_GB_SECOND[architecture],
        "dynamodb": totals["dynamodb_read_units"] * prices.DYNAMODB_READ_REQUEST_UNIT
        + totals["dynamodb_write_units"] * prices.DYNAMODB_WRITE_REQUEST_UNIT,
        "sqs": totals["sqs_requests"] * prices.SQS_REQUEST,
    }
    usd = {name: value * 1_000_000 for name, value in usd.items()}
    return usd | {"total": sum(usd.values())}


def _mean(samples: list[dict]) -> dict:
    return {name: statistics.fmean(sample[name] for sample in samples) for name in samples[0]}


def measure(session: Session, repetitions: int, progress: Callable[[str], None]) -> dict:
    """Run every path ``repetitions`` times, serially, and price the mean of what each run used."""
    functions = session.lambda_billing()
    definition = session.deployment.definition()
    largest: list[int] = []
    paths = {}
    for path, (chaos, verdict) in PATHS.items():
        progress(f"cost model: {path}, {repetitions} execution(s) with the request recorder on")
        ours, skipping, seconds = [], [], []
        for repetition in range(repetitions):
            booking_id = f"cost-{path.replace('_', '-')}-{repetition}"
            _recorder(session, "reset")
            _recorder(session, "start")
            try:
                took, arn = session.book(booking(booking_id, chaos))
            finally:
                _recorder(session, "stop")
            outcome = outcome_of(session.deployment, booking_id)
            if outcome.verdict != verdict:
                raise RuntimeError(f"{booking_id} ended {outcome.verdict}, not {verdict}")
            history = session.stepfunctions.get_paginator("get_execution_history").paginate(executionArn=arn)
            events = [event for page in history for event in page["events"]]
            recorded = _recorded_requests(_recorder(session, "download"))
            uses = _state_uses(events, recorded, largest, session.deployment.bookings_table)
            seconds.append(took)
            ours.append(_totals(uses, functions["memory_mb"]))
            skipped = _own_cancel(definition, outcome.failed_step.name) if outcome.failed_step else None
            skipping.append(_totals([use for use in uses if use.name != skipped], functions["memory_mb"]))
        paths[path] = {
            "verdict": verdict,
            "chaos": chaos,
            "local_seconds": statistics.fmean(seconds),  # with the recorder on and retry waits scaled
            "states": [_state_json(use) for use in uses],
            "skipped_by_alternative": skipped,
            "ours": _priced(_mean(ours), functions["architecture"]),
            "skip_own_cancel": _priced(_mean(skipping), functions["architecture"]),
        }
    return {
        "prices": prices.as_json(),
        "functions": functions,
        "repetitions": repetitions,
        "largest_item_written_bytes": max(largest, default=0),
        "paths": paths,
    }


def _own_cancel(definition: dict, failed_state: str) -> str:
    """The state a failed step's catch enters: its own cancel, which the alternative design skips."""
    return definition["States"][failed_state]["Catch"][0]["Next"]


def _priced(totals: dict, architecture: str) -> dict:
    return {"per_booking": totals, "usd_per_million_bookings": _dollars_per_million(totals, architecture)}


def _state_json(use: StateUse) -> dict:
    return {
        "name": use.name,
        "state_transitions": use.state_transitions,
        "lambda_invocations": use.lambda_invocations,
        "lambda_billed_ms": use.lambda_billed_ms,
        "dynamodb_read_units": use.dynamodb_read_units,
        "dynamodb_write_units": use.dynamodb_write_units,
        "dynamodb_calls": dict(use.dynamodb_calls),
        "sqs_requests": use.sqs_requests,
    }
