"""200 bookings at once for 50 seats and 30 rooms: no oversell, and every loser fully undone."""

from booking_saga import services
from booking_saga.ledger import Ledger
from saga.audit import audit
from saga.bookings import start_booking, wait_for
from tests.factories import booking

SERVICES = tuple(service.name for service in services.SERVICES)

BOOKINGS, SEATS, ROOMS = 200, 50, 30
# Locally every function runs a few invocations at a time and the rest queue, which a task's timeout
# counts; stretched timeouts keep queueing from turning into timeouts, which this test is not about.
TIMEOUT_SCALE = 20


def test_concurrent_bookings_never_oversell_and_losers_hold_nothing(deployment, figures):
    Ledger(deployment.table("flight"), "flight").stock("RUSH-1", SEATS)
    Ledger(deployment.table("hotel"), "hotel").stock("RUSH-INN", ROOMS)
    ids = [f"rush-{n:04d}" for n in range(BOOKINGS)]

    for booking_id in ids:
        start_booking(
            deployment,
            booking(booking_id, flight={"flight_id": "RUSH-1", "seats": 1}, hotel={"hotel_id": "RUSH-INN", "rooms": 1}),
        )
    outcomes = {booking_id: wait_for(deployment, booking_id, timeout=600) for booking_id in ids}

    verdicts = [outcome.verdict for outcome in outcomes.values()]
    figures["contention: concurrent bookings"] += BOOKINGS
    figures["contention: confirmed"] += verdicts.count("confirmed")
    assert verdicts.count("confirmed") == ROOMS  # the hotel is the bottleneck: every room sold, no more
    assert verdicts.count("compensated") == BOOKINGS - ROOMS
    errors = {outcome.failed_step.error for outcome in outcomes.values() if outcome.failed_step}
    assert errors == {"SoldOut"}
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
