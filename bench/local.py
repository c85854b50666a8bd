"""Local speed: saga latency and throughput on the local cloud, and on moto's bare interpreter.

The bare interpreter is the same deployed definition in the same local cloud, with every
Lambda invocation answered at once by ``instant_invoker`` through the same seam
(``LambdaSimpleBackend.invoke``). The interpreter's Invoke requests, the state handling,
the paths and the client are identical; only the handlers' work differs (worker process,
handler code and its DynamoDB calls), so the ratio of the two is the local cloud's cost
of running the real code.
"""

import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.callers import Caller
from bench.session import Session, booking

SCENARIOS = {"happy": None, "fail_at_payment": {"fail_at": "payment"}}
# The interpreter's speedups (saga/localcloud/moto_patches.py), added one at a time to moto as it ships;
# "all" is the local cloud as it runs everywhere else.
SPEEDUPS = {
    "none": {"cache_definitions": False, "reuse_clients": False},
    "parse_cache": {"cache_definitions": True, "reuse_clients": False},
    "all": {"cache_definitions": True, "reuse_clients": True},
}


def instant_invoker(function: Any, body: Any, headers: Any, response_headers: dict) -> bytes:
    """A no-op Lambda that ends as the real handler would on the benchmark's paths.

    A forced (chaos) failure is reported as Lambda reports the handler's ``ChaosFailure``, so
    the bare interpreter takes the same catches and compensations; any other call succeeds
    with a result shaped like the handler's.
    """
    service, _, action = function.handler.partition(".")
    document = json.loads(body)["booking"]
    chaos = document.get("chaos", {})
    if chaos.get("fail_at" if action == "reserve" else "fail_cancel") == service:
        response_headers["x-amz-function-error"] = "Unhandled"
        error = {"errorType": "ChaosFailure", "errorMessage": f"forced to fail at {service}", "stackTrace": []}
        return json.dumps(error).encode()
    status = "RESERVED" if action == "reserve" else "CANCELLED"
    return json.dumps({"service": service, "booking_id": document["booking_id"], "status": status}).encode()


@dataclass(frozen=True)
class Cell:
    """One measured batch: an engine and its speedups, a path, a number of bookings in flight."""

    engine: str
    speedups: str
    scenario: str
    concurrency: int
    latencies: tuple[float, ...]  # seconds, start request to end, one per booking
    seconds: float  # the batch's wall time

    def to_json(self) -> dict:
        return {
            "engine": self.engine,
            "speedups": self.speedups,
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "bookings": len(self.latencies),
            "p50_ms": statistics.median(self.latencies) * 1000,
            "p95_ms": _percentile(self.latencies, 95) * 1000,
            "mean_ms": statistics.fmean(self.latencies) * 1000,
            "throughput_per_s": len(self.latencies) / self.seconds,
        }


def _percentile(values: tuple[float, ...], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


class _Ids:
    """Unique execution names across a session (Step Functions refuses a name twice)."""

    def __init__(self):
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, prefix: str) -> str:
        with self._lock:
            self._next += 1
            return f"{prefix}-{self._next:06d}"


def closed_loop(
    session: Session, callers: list[Caller], ids: _Ids, scenario: str, concurrency: int, bookings: int
) -> tuple[list, float]:
    """``concurrency`` clients, each starting its next booking (in a caller process of its own, on a lane of its
    own) as soon as its last one ended."""
    if len(callers) < concurrency:
        raise ValueError(f"{concurrency} bookings in flight need as many callers, not {len(callers)}")
    if concurrency > session.lanes:
        raise ValueError(f"{concurrency} bookings in flight need as many lanes, not {session.lanes}")
    remaining = iter(range(bookings))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[BaseException] = []

    def client(caller: Caller, lane: int) -> None:
        try:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                seconds, _ = session.book(booking(ids(scenario), SCENARIOS[scenario], lane), caller)
                with lock:
                    latencies.append(seconds)
        except BaseException as error:  # re-raised in the caller's thread below
            failures.append(error)

    threads = [
        threading.Thread(target=client, args=(caller, lane), daemon=True)
        for lane, caller in enumerate(callers[:concurrency])
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return latencies, time.perf_counter() - started


def measure(
    session: Session,
    callers: list[Caller],
    engine: str,
    speedups: str,
    bookings: int,
    concurrencies: list[int],
    progress: Callable[[str], None],
) -> list[Cell]:
    """Every scenario at every concurrency, after a warm-up that starts the function workers a batch needs."""
    ids = _Ids()
    session.aim(callers)
    for scenario in SCENARIOS:
        closed_loop(session, callers, ids, scenario, max(concurrencies), 2 * max(concurrencies))
    cells = []
    for concurrency in concurrencies:
        for scenario in SCENARIOS:
            progress(f"{engine}, speedups {speedups}: {bookings} x {scenario}, {concurrency} in flight")
            latencies, seconds = closed_loop(session, callers, ids, scenario, concurrency, bookings)
            cells.append(Cell(engine, speedups, scenario, concurrency, tuple(latencies), seconds))
    _check_outcomes(session)
    return cells


def _check_outcomes(session: Session) -> None:
    """Every happy booking confirmed and every forced failure compensated, or the figures mean nothing."""
    expected = {"happy": "SUCCEEDED", "fail_at_payment": "FAILED"}
    paginator = session.stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=session.deployment.state_machine_arn):
        for execution in page["executions"]:
            scenario = execution["name"].rpartition("-")[0]
            if execution["status"] != expected[scenario]:
                raise RuntimeError(f"{execution['name']} ended {execution['status']}, not {expected[scenario]}")


def ratios(cells: list[dict]) -> tuple[list[dict], list[dict]]:
    """The local cloud over the bare interpreter at each level of speedups, and what each speedup gained."""
    index = {(c["engine"], c["speedups"], c["scenario"], c["concurrency"]): c for c in cells}
    overhead, gains = [], []
    levels = list(SPEEDUPS)
    for (engine, speedups, scenario, concurrency), cell in index.items():
        bare = index.get(("bare_interpreter", speedups, scenario, concurrency))
        if engine == "local_cloud" and bare:
            overhead.append(
                {
                    "speedups": speedups,
                    "scenario": scenario,
                    "concurrency": concurrency,
                    "p50_ratio": cell["p50_ms"] / bare["p50_ms"],
                    "p95_ratio": cell["p95_ms"] / bare["p95_ms"],
                    "throughput_ratio": bare["throughput_per_s"] / cell["throughput_per_s"],
                }
            )
        level = levels.index(speedups)
        before = index.get((engine, levels[level - 1], scenario, concurrency)) if level else None
        if before:
            gains.append(
                {
                    "engine": engine,
                    "added": speedups,  # the level whose speedup this is: it adds one to the level before
                    "scenario": scenario,
                    "concurrency": concurrency,
                    "p50_before_ms": before["p50_ms"],
                    "p50_after_ms": cell["p50_ms"],
                    "p50_speedup": before["p50_ms"] / cell["p50_ms"],
                    "throughput_speedup": cell["throughput_per_s"] / before["throughput_per_s"],
                }
            )
    return overhead, gains


def overhead_without_transaction_window(unheld: list[Cell], cells: list[dict]) -> list[dict]:
    """The real handlers' overhead one at a time again, measured on a local cloud whose transactions are never
    in progress (``transaction_window`` 0), over the bare interpreter as shipped: without the time each
    transaction is held so that conflicting writes meet as on DynamoDB, which is modelled time, not work."""
    bare = {
        cell["scenario"]: cell
        for cell in cells
        if (cell["engine"], cell["speedups"], cell["concurrency"]) == ("bare_interpreter", "all", 1)
    }
    overhead = []
    for cell in map(Cell.to_json, unheld):
        ratio = cell["p50_ms"] / bare[cell["scenario"]]["p50_ms"]
        overhead.append({"scenario": cell["scenario"], "p50_ms": cell["p50_ms"], "p50_ratio": ratio})
    return overhead
