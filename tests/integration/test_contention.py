"""200 bookings at once for 50 seats and 30 rooms: no oversell, and every loser fully undone.

The local cloud's DynamoDB holds the items of each transaction in progress, as DynamoDB does, so the bookings'
writes to one flight and one hotel meet transaction conflicts; none may cost a booking its seat."""

import time

from booking_saga import services
from booking_saga.ledger import Ledger
from saga.audit import audit
from saga.bookings import start_booking, wait_for
from tests.factories import booking

SERVICES = tuple(service.name for service in services.SERVICES)
RESERVES = ("ReserveFlight", "ReserveHotel", "ProcessPayment")

BOOKINGS, SEATS, ROOMS = 200, 50, 30
# Locally every function runs a few invocations at a time and the rest queue, which a task's timeout
# counts; stretched timeouts keep queueing from turning into timeouts, which this test is not about.
TIMEOUT_SCALE = 20
# Locally a function runs 4 invocations at once where AWS would run 200: a transaction in progress for longer than
# the local cloud's default keeps the hot flight and hotel as busy as 200 concurrent reserves would.
TRANSACTION_WINDOW = 0.02
KEEP_LAMBDA_LOGS = True  # tests/integration/conftest.py: the functions' metrics, for the writes they retried


def test_concurrent_bookings_never_oversell_and_losers_hold_nothing(cloud, deployment, figures):
    Ledger(deployment.table("flight"), "flight").stock("RUSH-1", SEATS)
    Ledger(deployment.table("hotel"), "hotel").stock("RUSH-INN", ROOMS)
    ids = [f"rush-{n:04d}" for n in range(BOOKINGS)]
    refused_before = sum(cloud.transaction_conflicts().values())
    retried_before = cloud.metric_total("TransactionConflictRetries")
    started = time.monotonic()

    for booking_id in ids:
        start_booking(
            deployment,
            booking(booking_id, flight={"flight_id": "RUSH-1", "seats": 1}, hotel={"hotel_id": "RUSH-INN", "rooms": 1}),
        )
    outcomes = {booking_id: wait_for(deployment, booking_id, timeout=600) for booking_id in ids}

    seconds = time.monotonic() - started
    refused = sum(cloud.transaction_conflicts().values()) - refused_before
    retried = int(cloud.metric_total("TransactionConflictRetries") - retried_before)
    reserve_retries = sum(
        step.attempts - 1 for outcome in outcomes.values() for step in outcome.path if step.name in RESERVES
    )
    verdicts = [outcome.verdict for outcome in outcomes.values()]
    figures["contention: concurrent bookings"] += BOOKINGS
    figures["contention: confirmed"] += verdicts.count("confirmed")
    figures["contention: compensated"] += verdicts.count("compensated")
    figures["contention: transaction conflicts"] += refused
    figures["contention: writes retried by the handlers after a conflict"] += retried
    figures["contention: reserves retried by the state machine"] += reserve_retries
    figures["contention: seconds, start to last end"] += round(seconds)
    assert refused > 0, "no transaction conflict happened: the test proves nothing about them"
    assert verdicts.count("confirmed") == ROOMS  # the hotel is the bottleneck: every room sold, no more
    assert verdicts.count("compensated") == BOOKINGS - ROOMS
    errors = {outcome.failed_step.error for outcome in outcomes.values() if outcome.failed_step}
    assert errors == {"SoldOut"}  # no booking lost to a conflict
    assert 0 < retried <= refused  # the handlers retried the writes refused (a write given up on is not retried)
    held = {service: 0 for service in SERVICES}
    for booking_id, outcome in outcomes.items():
        for service in SERVICES:
            is_held = (deployment.ledger(service).record(booking_id) or {}).get("status") == "RESERVED"
            assert is_held == (outcome.verdict == "confirmed"), (booking_id, service)
            held[service] += is_held
    assert held == dict.fromkeys(SERVICES, ROOMS)
    inventory = {
        service: deployment.ledger(service).available(resource_id)
        for service, resource_id in (("flight", "RUSH-1"), ("hotel", "RUSH-INN"))
    }
    assert inventory == {"flight": SEATS - ROOMS, "hotel": 0}
    assert audit(deployment).clean
