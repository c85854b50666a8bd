"""Every booking ends fully confirmed, fully undone, or parked in the dead-letter queue: under random faults.

Hypothesis draws a booking (seats and rooms against a fresh flight and hotel of
random capacity, an amount around the payment limit, sometimes malformed) and a
fault schedule over all six functions (transient failures, duplicate delivery,
a reserve that times out after its write, a forced business failure, a cancel
that fails for good). Each runs as a real execution on the local cloud, and the
invariant is checked from the tables and the dead-letter queue afterwards:

- confirmed: exactly its seats, rooms and charge are held;
- compensated: nothing is held and capacity is back where it was;
- parked: exactly one dead-letter message, and every service it
  does not report as undone still holds what it took (nothing else is held).

The expected outcome comes from a small model of the saga, so a fault that
changes an outcome it should not (a transient failure that is not retried, say)
fails the test too (the schedules and the model: ``fault_schedules``). ``--schedules N`` sets how many schedules
run (default 200).
"""

import itertools

from hypothesis import HealthCheck, given, settings

from booking_saga.ledger import Ledger
from saga.audit import audit
from saga.bookings import start_booking, wait_for
from tests.integration import fault_schedules
from tests.integration.fault_schedules import (
    PAYMENT_LIMIT,
    SERVICES,
    Expected,
    Scenario,
    document,
    drain_dead_letters,
    expected,
    scenarios,
)

TIMEOUT_SCALE = fault_schedules.TIMEOUT_SCALE  # the module's local cloud (conftest's ``cloud``) runs at it
_numbers = itertools.count(1)


def held(deployment, booking_id: str) -> dict[str, dict]:
    records = {service: deployment.ledger(service).record(booking_id) for service in SERVICES}
    return {service: record for service, record in records.items() if (record or {}).get("status") == "RESERVED"}


def count_faults(figures, scenario: Scenario) -> None:
    chaos = scenario.chaos
    figures["faults: transient failures injected"] += sum(chaos.get("transient", {}).values())
    figures["faults: duplicate deliveries"] += len(chaos.get("duplicate", []))
    figures["faults: timeouts after the write"] += "timeout_after_write" in chaos
    figures["faults: forced business failures (chaos)"] += "fail_at" in chaos
    figures["faults: cancels failing for good"] += "fail_cancel" in chaos
    figures["faults: malformed bookings"] += scenario.malformed


def test_every_fault_schedule_ends_confirmed_undone_or_parked(deployment, figures, request):
    figures["leaks found"] += 0

    @settings(
        max_examples=request.config.getoption("--schedules"),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(scenario=scenarios())
    def run(scenario: Scenario) -> None:
        number = next(_numbers)
        booking_id, flight_id, hotel_id = f"schedule-{number}", f"FLIGHT-{number}", f"HOTEL-{number}"
        Ledger(deployment.table("flight"), "flight").stock(flight_id, scenario.flight_capacity)
        Ledger(deployment.table("hotel"), "hotel").stock(hotel_id, scenario.hotel_capacity)
        model = expected(scenario)

        start_booking(deployment, document(booking_id, scenario, flight_id, hotel_id))
        outcome = wait_for(deployment, booking_id, timeout=120)

        figures["schedules run (bookings)"] += 1
        figures[f"outcome: {outcome.verdict}"] += 1
        count_faults(figures, scenario)
        records = held(deployment, booking_id)
        seats_left, rooms_left = (
            deployment.ledger("flight").available(flight_id),
            deployment.ledger("hotel").available(hotel_id),
        )
        parked = [message for message in drain_dead_letters(deployment) if message["saga"]["booking_id"] == booking_id]
        leaks = set(records) - model.held
        figures["leaks found"] += len(leaks)

        path = [(step.name, step.error) if step.error else step.name for step in outcome.path]
        assert (outcome.verdict, set(records)) == (model.verdict, set(model.held)), path
        if model.failure:
            assert outcome.failed_step is not None and outcome.failed_step.error == model.failure
        taken_seats = scenario.seats if "flight" in model.held else 0
        taken_rooms = scenario.rooms if "hotel" in model.held else 0
        assert (seats_left, rooms_left) == (
            scenario.flight_capacity - taken_seats,
            scenario.hotel_capacity - taken_rooms,
        )
        if "flight" in records:
            assert records["flight"]["quantity"] == scenario.seats
        if "hotel" in records:
            assert records["hotel"]["quantity"] == scenario.rooms
        if "payment" in records:
            assert records["payment"]["amount"] == scenario.amount
        if model.verdict == "parked":
            assert len(parked) == 1
            undone = set(parked[0]["saga"].get("compensations", {}))
            assert not undone & set(records), "the message reports as undone a service that still holds"
            assert set(records) <= set(SERVICES) - undone
            assert parked[0]["execution_arn"] == outcome.execution_arn
        else:
            assert parked == []

    run()
    report = audit(deployment)
    assert report.clean, report.drift
    figures["audit: reservations held after the schedules"] += report.reserved
    figures["audit: drift found"] += len(report.drift)


def test_the_model_knows_the_saga(figures):
    """The oracle itself, on cases whose outcome the README spells out."""
    plain = Scenario(seats=2, rooms=1, flight_capacity=5, hotel_capacity=5, amount=100, malformed=False)
    assert expected(plain) == Expected("confirmed", frozenset(SERVICES), None)
    declined = Scenario(2, 1, 5, 5, PAYMENT_LIMIT + 1, False)
    assert expected(declined) == Expected("compensated", frozenset(), "PaymentDeclined")
    stuck = Scenario(2, 1, 5, 5, 100, False, {"fail_at": "payment", "fail_cancel": "hotel"})
    assert expected(stuck) == Expected("parked", frozenset({"flight", "hotel"}), "ChaosFailure")
    late = Scenario(2, 1, 5, 5, 100, False, {"timeout_after_write": "hotel", "fail_cancel": "hotel"})
    assert expected(late) == Expected("parked", frozenset({"flight", "hotel"}), "Sandbox.Timedout")
    sold_out = Scenario(2, 6, 5, 5, 100, False, {"fail_cancel": "payment"})
    assert expected(sold_out) == Expected("compensated", frozenset(), "SoldOut")
