"""The synthesized state machine, executed in the local cloud with the real handler code.

Each test books a trip, reads the execution history for the exact order of the
states it entered, and checks the tables afterwards: a confirmed booking holds
exactly its seats, rooms and charge; a failed one holds nothing and every seat
and room it took is back on sale.
"""

import json

import pytest

from booking_saga.contract import fingerprint
from saga.bookings import Outcome, start_booking, wait_for
from stacks.saga_chain import COMPENSATION_RETRIES
from tests.factories import booking

HAPPY_PATH = ["ReserveFlight", "ReserveHotel", "ProcessPayment", "BookingConfirmed"]
FAILED_AT_PAYMENT = [*HAPPY_PATH[:3], "RefundPayment", "CancelHotel", "CancelFlight", "BookingFailed"]
FAILED_AT_HOTEL = ["ReserveFlight", "ReserveHotel", "CancelHotel", "CancelFlight", "BookingFailed"]
FAILED_AT_FLIGHT = ["ReserveFlight", "CancelFlight", "BookingFailed"]


def book(deployment, document: dict) -> Outcome:
    start_booking(deployment, document)
    outcome = wait_for(deployment, document["booking_id"], timeout=60)
    assert outcome.status != "RUNNING", f"{document['booking_id']} did not finish"
    return outcome


def states(outcome: Outcome) -> list[str]:
    return [step.name for step in outcome.path]


def on_sale(deployment, flight_id: str, hotel_id: str) -> tuple[int, int]:
    """Seats left on the flight, rooms left in the hotel."""
    return deployment.ledger("flight").available(flight_id), deployment.ledger("hotel").available(hotel_id)


def execution(deployment, outcome: Outcome) -> dict:
    return deployment.client("stepfunctions").describe_execution(executionArn=outcome.execution_arn)


def assert_nothing_held(deployment, booking_id: str) -> None:
    for service in ("flight", "hotel", "payment"):
        item = deployment.ledger(service).record(booking_id)
        assert item is None or item["status"] == "CANCELLED", f"{service} still holds {booking_id}: {item}"


def test_a_booking_is_confirmed_and_holds_exactly_what_it_booked(deployment):
    seats, rooms = on_sale(deployment, "NH101", "TOKYO-GRAND")
    trip = booking("ok-0001")

    outcome = book(deployment, trip)

    assert states(outcome) == HAPPY_PATH
    assert outcome.verdict == "confirmed"
    assert deployment.ledger("flight").available("NH101") == seats - 2
    assert deployment.ledger("hotel").available("TOKYO-GRAND") == rooms - 1
    assert deployment.ledger("flight").record("ok-0001") | {"reserved_at": None} == {
        "pk": "booking#ok-0001",
        "booking_id": "ok-0001",
        "status": "RESERVED",
        "owner": outcome.execution_arn,  # the execution that reserved it, the only one that may release it
        "fingerprint": fingerprint(trip),
        "reserved_at": None,
        "resource_id": "NH101",
        "quantity": 2,
        "customer_id": "c-42",
    }
    assert deployment.ledger("hotel").record("ok-0001")["quantity"] == 1
    charge = deployment.ledger("payment").record("ok-0001")
    assert (charge["status"], charge["amount"], charge["currency"]) == ("RESERVED", 84000, "JPY")
    output = json.loads(execution(deployment, outcome)["output"])
    assert {service: result["status"] for service, result in output["reservations"].items()} == {
        "flight": "RESERVED",
        "hotel": "RESERVED",
        "payment": "RESERVED",
    }


def test_a_declined_payment_is_refunded_then_hotel_and_flight_cancelled(deployment):
    seats, rooms = on_sale(deployment, "NH101", "TOKYO-GRAND")

    outcome = book(deployment, booking("declined-0001", payment={"amount": 900_000, "currency": "JPY"}))

    assert states(outcome) == FAILED_AT_PAYMENT
    assert outcome.verdict == "compensated"
    assert [step.name for step in outcome.compensations] == ["RefundPayment", "CancelHotel", "CancelFlight"]
    failed = execution(deployment, outcome)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "PaymentDeclined"
    assert json.loads(failed["cause"])["errorMessage"].startswith("ProcessPayment: ")
    assert deployment.ledger("flight").available("NH101") == seats
    assert deployment.ledger("hotel").available("TOKYO-GRAND") == rooms
    assert_nothing_held(deployment, "declined-0001")
    assert deployment.ledger("payment").record("declined-0001")["status"] == "CANCELLED"  # the tombstone


def test_a_sold_out_hotel_cancels_the_hotel_and_flight(deployment):
    seats, rooms = on_sale(deployment, "NH106", "KYOTO-RYOKAN")

    outcome = book(
        deployment,
        booking(
            "soldout-0001", flight={"flight_id": "NH106", "seats": 1}, hotel={"hotel_id": "KYOTO-RYOKAN", "rooms": 7}
        ),
    )

    assert states(outcome) == FAILED_AT_HOTEL
    failed = execution(deployment, outcome)
    assert failed["error"] == "SoldOut"
    assert json.loads(failed["cause"])["errorMessage"] == "ReserveHotel: hotel KYOTO-RYOKAN has 6 left, 7 requested"
    assert on_sale(deployment, "NH106", "KYOTO-RYOKAN") == (seats, rooms)
    assert_nothing_held(deployment, "soldout-0001")
    assert deployment.ledger("payment").record("soldout-0001") is None  # payment never ran


def test_a_chaos_failure_at_the_flight_cancels_only_the_flight(deployment):
    seats = deployment.ledger("flight").available("JL5")

    outcome = book(
        deployment, booking("chaos-flight-0001", flight={"flight_id": "JL5", "seats": 3}, chaos={"fail_at": "flight"})
    )

    assert states(outcome) == FAILED_AT_FLIGHT
    assert outcome.failed_step.name == "ReserveFlight"
    assert outcome.failed_step.attempts == 1  # a business error is never retried
    assert execution(deployment, outcome)["error"] == "ChaosFailure"
    assert deployment.ledger("flight").available("JL5") == seats
    assert_nothing_held(deployment, "chaos-flight-0001")


@pytest.mark.parametrize(
    ("fail_at", "expected"),
    [("flight", FAILED_AT_FLIGHT), ("hotel", FAILED_AT_HOTEL), ("payment", FAILED_AT_PAYMENT)],
)
def test_chaos_at_each_step_compensates_in_reverse_order(deployment, fail_at, expected):
    seats, rooms = on_sale(deployment, "NH101", "TOKYO-GRAND")

    outcome = book(deployment, booking(f"chaos-{fail_at}-0002", chaos={"fail_at": fail_at}))

    assert states(outcome) == expected
    assert on_sale(deployment, "NH101", "TOKYO-GRAND") == (seats, rooms)
    assert_nothing_held(deployment, f"chaos-{fail_at}-0002")


def test_a_compensation_that_keeps_failing_is_parked_in_the_dead_letter_queue(deployment):
    trip = booking("stuck-0001", chaos={"fail_at": "payment", "fail_cancel": "hotel"})

    outcome = book(deployment, trip)

    assert states(outcome) == [
        *HAPPY_PATH[:3],
        "RefundPayment",
        "CancelHotel",
        "SendToDeadLetterQueue",
        "CompensationFailed",
    ]
    assert outcome.verdict == "parked"
    cancel_hotel = outcome.path[4]
    assert (cancel_hotel.attempts, cancel_hotel.error) == (1 + COMPENSATION_RETRIES, "ChaosFailure")
    failed = execution(deployment, outcome)
    assert failed["error"] == "CompensationFailed"
    assert failed["cause"] == (
        "Booking stuck-0001 is only partly undone: ChaosFailure. Its state is in the dead-letter queue."
    )
    messages = deployment.client("sqs").receive_message(
        QueueUrl=deployment.dead_letter_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    assert len(messages) == 1
    parked = json.loads(messages[0]["Body"])
    assert parked["execution_arn"] == outcome.execution_arn
    assert parked["saga"]["booking_id"] == "stuck-0001"
    assert parked["saga"]["compensation_failure"]["Error"] == "ChaosFailure"
    # What an operator must still undo is exactly what the message says is left: the hotel and flight.
    assert deployment.ledger("hotel").record("stuck-0001")["status"] == "RESERVED"
    assert deployment.ledger("flight").record("stuck-0001")["status"] == "RESERVED"
    assert deployment.ledger("payment").record("stuck-0001")["status"] == "CANCELLED"


def test_a_malformed_booking_fails_before_anything_is_written(deployment):
    trip = booking("malformed-0001", flight={"flight_id": "NH101", "seats": 0})
    seats = deployment.ledger("flight").available("NH101")

    outcome = book(deployment, trip)

    assert states(outcome) == FAILED_AT_FLIGHT
    failed = execution(deployment, outcome)
    assert failed["error"] == "InvalidBooking"
    assert "ReserveFlight: " in json.loads(failed["cause"])["errorMessage"]
    assert deployment.ledger("flight").available("NH101") == seats
    for service in ("flight", "hotel", "payment"):
        assert deployment.ledger(service).record("malformed-0001") is None


def test_concurrent_bookings_never_oversell(deployment):
    """SMALL-1 has two seats: of five simultaneous one-seat bookings exactly two are confirmed."""
    ids = [f"race-{n:04d}" for n in range(5)]
    for booking_id in ids:
        start_booking(deployment, booking(booking_id, flight={"flight_id": "SMALL-1", "seats": 1}))
    outcomes = [wait_for(deployment, booking_id, timeout=60) for booking_id in ids]

    assert sorted(outcome.verdict for outcome in outcomes) == ["compensated"] * 3 + ["confirmed"] * 2
    assert deployment.ledger("flight").available("SMALL-1") == 0
    held = [deployment.ledger("flight").record(booking_id) for booking_id in ids]
    assert sum(item is not None and item["status"] == "RESERVED" for item in held) == 2
