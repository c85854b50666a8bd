"""``python -m bench --designs``: the trip three ways side by side, on one local cloud.

Per design and path (confirmed, a failure at each step, a cancel that fails for good; the atomic design has no
cancel to fail): local latency p50 and p95 over serial bookings, throughput with bookings in flight at once, and
AWS cost per million bookings from the requests one booking of the path made, recorded by moto's recorder:

- Lambda requests: the invocations recorded (Step Functions' and ``saga``'s calls); the choreography's come from
  EventBridge inside the local cloud, so they are counted from its saga log: every event reaches the saga log's
  function and the one reaction it starts (a failed attempt's retries are not counted). Lambda duration is not
  priced: it is the same handlers' few milliseconds in every design, and the local cloud's spans are not AWS's.
- EventBridge: each event put on a bus (PutEvents entries); Step Functions: each state entered and each retry;
  DynamoDB and SQS: as ``bench.cost`` counts them.

Also per design: the resources its template deploys, the lines of its handler code, and where an operator reads
a failed booking's history.
"""

import base64
import json
import math
import statistics
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import prices, report  # report chooses matplotlib's file-only backend before pyplot is imported
from bench.cost import _dynamodb_units
from booking_saga.choreography import reaction_to
from booking_saga.designs import ATOMIC, CHOREOGRAPHY, DESIGNS, ORCHESTRATION
from booking_saga.executions import execution_path
from booking_saga.services import reference_trip
from saga.bookings import start_booking, wait_for
from saga.deployment import DEFAULT_STACK, find_deployment
from saga.designs import find_design
from saga.localcloud import LocalCloud

PATHS = {
    "confirmed": None,
    "fail_at_flight": {"fail_at": "flight"},
    "fail_at_hotel": {"fail_at": "hotel"},
    "fail_at_payment": {"fail_at": "payment"},
    "cancel_fails": {"fail_at": "payment", "fail_cancel": "hotel"},
}
STOCK = 1_000_000
LAMBDA = Path(__file__).resolve().parent.parent / "lambdas"
# The handler code each design runs beyond what all three share (the contract, the ledger, the services' list).
HANDLER_CODE = {
    ORCHESTRATION: (
        "flight.py",
        "hotel.py",
        "payment.py",
        "booking_saga/service.py",
        "reconciler.py",
        "booking_saga/reconciliation.py",
    ),
    CHOREOGRAPHY: (
        "flight.py",
        "hotel.py",
        "payment.py",
        "booking_saga/service.py",
        "choreography.py",
        "booking_saga/choreography.py",
    ),
    ATOMIC: ("flight.py", "hotel.py", "payment.py", "booking_saga/service.py", "atomic.py", "booking_saga/atomic.py"),
}


class _Design:
    """Books on one design and waits for the end; reads what a booking cost from the recorded requests."""

    def __init__(self, design: str, endpoint_url: str):
        self.name = design
        if design == ORCHESTRATION:
            self.deployment = find_deployment(DEFAULT_STACK, endpoint_url=endpoint_url)
            ledger = self.deployment.ledger
        else:
            self.other = find_design(design, endpoint_url=endpoint_url)
            ledger = self.other.ledger
        ledger("flight").stock("BENCH-FL", STOCK)
        ledger("hotel").stock("BENCH-HT", STOCK)

    def book(self, document: dict) -> tuple[float, str]:
        """Seconds from the request to the end, and the verdict."""
        started = time.perf_counter()
        self.start(document)
        verdict = self.wait(document["booking_id"])
        return time.perf_counter() - started, verdict

    def start(self, document: dict) -> None:
        if self.name == ORCHESTRATION:
            start_booking(self.deployment, document)
        else:
            self.other.book(document)

    def wait(self, booking_id: str) -> str:
        """The booking's verdict once it ended (polling: its reads are not the booking's own)."""
        if self.name == ORCHESTRATION:
            return wait_for(self.deployment, booking_id, timeout=300).verdict
        while (ending := self.other.ending(booking_id)).status == "RUNNING":
            time.sleep(0.005)
        return ending.verdict

    def extra_use(self, booking_id: str) -> dict[str, int]:
        """What the recording cannot show: the choreography's invocations, Step Functions' transitions."""
        if self.name == CHOREOGRAPHY:
            entries = self.other.saga_log().entries(self.other.ending(booking_id).instance)
            return {"lambda_invocations": sum(1 + (reaction_to(entry.type) is not None) for entry in entries)}
        if self.name == ORCHESTRATION:
            arn = wait_for(self.deployment, booking_id, timeout=300).execution_arn
            steps = execution_path(self.deployment.client("stepfunctions"), arn)
            return {"state_transitions": sum(1 + max(0, step.attempts - 1) for step in steps)}
        return {}


def _document(design: str, n: int, chaos: dict | None) -> dict:
    document = reference_trip(f"bench-{design[:4]}-{n:06d}") | {
        "flight": {"flight_id": "BENCH-FL", "seats": 1},
        "hotel": {"hotel_id": "BENCH-HT", "rooms": 1},
    }
    return document | ({"chaos": chaos} if chaos else {})


def _recorder(endpoint_url: str, action: str) -> str:
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/recorder/{action}-recording", method="GET" if action == "download" else "POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def _use(recording: str) -> dict[str, float]:
    """Lambda invocations, EventBridge events, DynamoDB units and SQS requests in a recording."""
    use = dict.fromkeys(("lambda_invocations", "events", "dynamodb_read_units", "dynamodb_write_units", "sqs"), 0.0)
    for line in recording.splitlines():
        entry = json.loads(line)
        body = base64.b64decode(entry["body"]).decode() if entry["body_encoded"] else entry["body"] or ""
        target = entry["headers"].get("X-Amz-Target", "")
        if "/functions/" in entry["url"] and entry["url"].endswith("/invocations"):
            use["lambda_invocations"] += 1
        elif target == "AWSEvents.PutEvents":
            use["events"] += len(json.loads(body)["Entries"])
        elif target.startswith("DynamoDB_"):
            operation = target.partition(".")[2]
            if operation in ("Query", "Scan"):  # the saga log's reads: 1 RRU per started 4 KB, about 1 here
                use["dynamodb_read_units"] += 1
            else:
                reads, writes = _dynamodb_units(operation, json.loads(body or "{}"), [])
                use["dynamodb_read_units"] += reads
                use["dynamodb_write_units"] += writes
        elif target == "AmazonSQS.SendMessage":
            use["sqs"] += max(1, math.ceil(len(json.loads(body).get("MessageBody", "").encode()) / 65536))
    return use


def _usd_per_million(use: dict[str, float]) -> dict[str, float]:
    usd = {
        "step_functions": use.get("state_transitions", 0) * prices.STATE_TRANSITION,
        "lambda_requests": use["lambda_invocations"] * prices.LAMBDA_REQUEST,
        "eventbridge": use["events"] * prices.EVENTBRIDGE_EVENT,
        "dynamodb": use["dynamodb_read_units"] * prices.DYNAMODB_READ_REQUEST_UNIT
        + use["dynamodb_write_units"] * prices.DYNAMODB_WRITE_REQUEST_UNIT,
        "sqs": use["sqs"] * prices.SQS_REQUEST,
    }
    usd["total"] = sum(usd.values())
    return {name: value * 1_000_000 for name, value in usd.items()}


def _resources(assembly: Path, design: str) -> int:
    template = json.loads((assembly / f"{DESIGNS[design].stack}.template.json").read_text())
    return len(template["Resources"])


def _handler_lines(design: str) -> int:
    return sum(len((LAMBDA / path).read_text().splitlines()) for path in HANDLER_CODE[design])


def measure(assembly: Path, runs: int, concurrency: int, progress: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    counter = iter(range(10**6))
    with LocalCloud(wait_scale=0.01, timeout_scale=5) as cloud:
        for design in DESIGNS:
            cloud.deploy(assembly, DESIGNS[design].stack)
        for design in DESIGNS:
            runner = _Design(design, cloud.endpoint_url)
            paths = {}
            for path, chaos in PATHS.items():
                if design == ATOMIC and chaos and "fail_cancel" in chaos:
                    continue  # one transaction: no cancel to fail
                progress(f"{design}: {path}, {runs} bookings one after another")
                latencies = [runner.book(_document(design, next(counter), chaos))[0] for _ in range(runs)]
                _recorder(cloud.endpoint_url, "reset")
                _recorder(cloud.endpoint_url, "start")
                document = _document(design, next(counter), chaos)
                runner.start(document)
                time.sleep(max(latencies) + 1)  # no polling while recording: only the booking's own requests
                _recorder(cloud.endpoint_url, "stop")
                verdict = runner.wait(document["booking_id"])
                use = _use(_recorder(cloud.endpoint_url, "download")) | runner.extra_use(document["booking_id"])
                paths[path] = {
                    "verdict": verdict,
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000 if runs > 1 else latencies[0] * 1000,
                    "use": use,
                    "usd_per_million": _usd_per_million(use),
                }
            progress(f"{design}: {concurrency * 4} bookings, {concurrency} at a time")
            documents = [_document(design, next(counter), None) for _ in range(concurrency * 4)]
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(runner.book, documents))
            results[design] = {
                "paths": paths,
                "bookings_per_second": len(documents) / (time.perf_counter() - started),
                "resources": _resources(assembly, design),
                "handler_lines": _handler_lines(design),
                "failed_booking_history": DESIGNS[design].history,
            }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'design':<14} {'path':<16} {'verdict':<12} {'p50 ms':>8} {'p95 ms':>8} {'US$/M bookings':>15}",
    ]
    for design, measured in results.items():
        for path, cell in measured["paths"].items():
            lines.append(
                f"{design:<14} {path:<16} {cell['verdict']:<12} {cell['p50_ms']:>8.0f} {cell['p95_ms']:>8.0f} "
                f"{cell['usd_per_million']['total']:>15.2f}"
            )
    lines.append("")
    lines.append(f"{'design':<14} {'bookings/s':>10} {'resources':>10} {'handler lines':>14}  failed booking's history")
    for design, measured in results.items():
        lines.append(
            f"{design:<14} {measured['bookings_per_second']:>10.1f} {measured['resources']:>10} "
            f"{measured['handler_lines']:>14}  {measured['failed_booking_history']}"
        )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    """Latency p50 and cost per path, one bar per design."""
    figure, (latency, cost) = report.plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(results)
    for index, (design, measured) in enumerate(results.items()):
        positions = [list(PATHS).index(path) + index * width for path in measured["paths"]]
        cells = measured["paths"].values()
        latency.bar(positions, [cell["p50_ms"] for cell in cells], width, label=design)
        cost.bar(positions, [cell["usd_per_million"]["total"] for cell in cells], width, label=design)
    for axes, title in ((latency, "local latency p50 (ms)"), (cost, "AWS US$ per million bookings")):
        axes.set_xticks([n + 0.4 - width / 2 for n in range(len(PATHS))], list(PATHS), rotation=20)
        axes.set_title(title)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
