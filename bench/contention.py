"""A hot flight: many bookings at once for a few seats and rooms, with DynamoDB's transaction conflicts on.

Every reserve and cancel writes the flight's and the hotel's one inventory item, so bookings started together meet
each other's transactions in progress there, as they would on AWS. The figures say how many writes DynamoDB
refused, how many the handlers retried (``ledger.ConflictRetry``), how many reserves the state machine had to
retry, and how the bookings ended: every room sold, every other booking compensated with ``SoldOut``.
"""

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.session import deployed
from booking_saga.executions import start_booking
from booking_saga.ledger import Ledger
from booking_saga.services import reference_trip
from saga.bookings import outcome_of

FLIGHT, HOTEL = "BENCH-HOT-FLIGHT", "BENCH-HOT-INN"
RESERVES = ("ReserveFlight", "ReserveHotel", "ProcessPayment")
# As tests/integration/test_contention.py: locally a function runs a few invocations at once where AWS would run
# them all, so a transaction stays in progress longer than the local cloud's default to keep the item as busy.
TRANSACTION_WINDOW_SECONDS = 0.02


def measure(assembly: Path, bookings: int, progress: Callable[[str], None]) -> dict:
    """``bookings`` started at once for a quarter as many seats and 3/20 as many rooms (200: 50 seats, 30 rooms)."""
    seats, rooms = max(1, bookings // 4), max(1, bookings * 3 // 20)
    progress(f"contention: {bookings} bookings at once for {seats} seats and {rooms} rooms, conflicts on")
    with (
        tempfile.TemporaryDirectory(prefix="bench-logs-") as logs,
        deployed(assembly, log_dir=Path(logs), transaction_window=TRANSACTION_WINDOW_SECONDS) as session,
    ):
        deployment = session.deployment
        Ledger(deployment.table("flight"), "flight").stock(FLIGHT, seats)
        Ledger(deployment.table("hotel"), "hotel").stock(HOTEL, rooms)
        conflicts_before = session.cloud.transaction_conflicts()
        retries_before = session.cloud.metric_total("TransactionConflictRetries")
        started = time.perf_counter()
        arns = {
            booking_id: start_booking(
                session.stepfunctions, deployment.registry(), deployment.state_machine_arn, _hot(booking_id)
            ).execution_arn
            for booking_id in (f"hot-{n:04d}" for n in range(bookings))
        }
        ended = max(session.finishes.wait(arn) for arn in arns.values())
        conflicts = Counter(session.cloud.transaction_conflicts())
        conflicts.subtract(conflicts_before)
        retries = session.cloud.metric_total("TransactionConflictRetries") - retries_before
        outcomes = [outcome_of(deployment, booking_id) for booking_id in arns]
    return {
        "bookings": bookings,
        "seats": seats,
        "rooms": rooms,
        "transaction_window_s": TRANSACTION_WINDOW_SECONDS,
        "seconds": ended - started,
        "conflicts": sum(conflicts.values()),
        "conflicts_by_operation": {operation: count for operation, count in conflicts.items() if count},
        "handler_retries": int(retries),
        "state_machine_retries": sum(
            step.attempts - 1 for outcome in outcomes for step in outcome.path if step.name in RESERVES
        ),
        "verdicts": dict(Counter(outcome.verdict for outcome in outcomes)),
        "errors": dict(Counter(outcome.failed_step.error for outcome in outcomes if outcome.failed_step)),
    }


def _hot(booking_id: str) -> dict:
    """The reference trip, for one seat and one room on the hot flight and hotel."""
    return reference_trip(booking_id) | {
        "flight": {"flight_id": FLIGHT, "seats": 1},
        "hotel": {"hotel_id": HOTEL, "rooms": 1},
    }
