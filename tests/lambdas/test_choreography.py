"""The choreographed saga's handlers against moto's DynamoDB, wired as the stack's rules wire them.

``Wire`` stands for the bus: every event reaches the bookings service (the saga log) and the one reaction
``reactions()`` gives it, and a handler's exception becomes the record Lambda's on-failure destination puts on the
bus. It delivers in order, or draws the next event at random and delivers some twice (at least once, out of order).
"""

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import flight
import hotel
import payment
from booking_saga import choreography
from booking_saga.choreography import (
    FAILURE_RECORD,
    Bookings,
    Bus,
    Participant,
    SagaLog,
    compensation_chain,
    reaction_to,
    reactions,
    request,
)
from booking_saga.executions import verdict
from booking_saga.observability import metrics
from booking_saga.services import SERVICES
from tests.factories import booking
from tests.lambdas.support import PAYMENT_LIMIT, held

SAGA = "saga-0001"


class _Client:
    """EventBridge's PutEvents, taking every entry onto ``queue``."""

    def __init__(self, queue: list[dict[str, Any]]):
        self.queue = queue

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            self.queue.append(
                {
                    "id": str(uuid.uuid4()),
                    "source": entry["Source"],
                    "detail-type": entry["DetailType"],
                    "detail": choreography.json.loads(entry["Detail"]),
                }
            )
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


class Wire:
    def __init__(self, log: SagaLog, rng: random.Random | None = None, duplicates: float = 0.0):
        self.queue: list[dict[str, Any]] = []
        self.rng, self.duplicates = rng, duplicates
        client = _Client(self.queue)
        self.bus: Callable[[str], Bus] = lambda source: Bus(client, "bookings", source)
        handlers = {"flight": flight.service, "hotel": hotel.service, "payment": payment.service}
        self.participants = {
            name: Participant(service, lambda name=name: self.bus(f"booking.{name}"), retries=3)
            for name, service in handlers.items()
        }
        self.bookings = Bookings(lambda: log, lambda: self.bus("booking.bookings"))

    def run(self) -> None:
        while self.queue:
            index = self.rng.randrange(len(self.queue)) if self.rng else 0
            event = self.queue.pop(index)
            if self.rng and self.rng.random() < self.duplicates:
                self.queue.append(event)  # delivered again, later
            self.deliver(event)

    def deliver(self, event: dict[str, Any]) -> None:
        try:
            self._deliver(event)
        finally:
            metrics.clear_metrics()  # each delivery is one invocation, whose metrics Lambda's handler flushes

    def _deliver(self, event: dict[str, Any]) -> None:
        if event["detail-type"] == FAILURE_RECORD:
            request_event = event["detail"]["requestPayload"]
            reaction = reaction_to(request_event["detail-type"])
            assert reaction is not None
            if reaction.action == "reserve":  # the rule on the reserve's failure records: its own cancel
                self.participants[reaction.service.name].cancel(event, None)
            else:
                self.bookings.record(event)
            return
        self.bookings.record(event)
        reaction = reaction_to(event["detail-type"])
        if reaction is None:
            return
        handler = getattr(self.participants[reaction.service.name], reaction.action)
        try:
            handler(event, None)
        except Exception as error:  # Lambda's attempts all failed: its on-failure destination reports it
            self.queue.append(
                {
                    "id": str(uuid.uuid4()),
                    "source": "lambda",
                    "detail-type": FAILURE_RECORD,
                    "detail": {
                        "requestPayload": event,
                        "responsePayload": {"errorType": type(error).__name__, "errorMessage": str(error)},
                    },
                }
            )


@pytest.fixture
def log(dynamodb, powertools, stock):
    stock("flight", "NH101", 5)
    stock("hotel", "TOKYO-GRAND", 3)
    table = dynamodb.create_table(
        TableName="saga-log",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return SagaLog(table)


def run(log: SagaLog, document: dict, wire: Wire | None = None) -> list[str]:
    wire = wire or Wire(log)
    request(wire.bus("booking.bookings"), document, SAGA)
    wire.run()
    return [entry.type for entry in log.entries(SAGA)]


def test_the_flow_is_made_of_each_services_reserve_and_cancel():
    flow = [(reaction.on, reaction.step, reaction.emits) for reaction in reactions()]

    assert flow == [
        (("BookingRequested",), "ReserveFlight", ("FlightReserved", "ReserveFlightFailed")),
        (("FlightReserved",), "ReserveHotel", ("HotelReserved", "ReserveHotelFailed")),
        (("HotelReserved",), "ProcessPayment", ("PaymentProcessed", "ProcessPaymentFailed")),
        (("ReserveFlightFailed", "HotelCancelled"), "CancelFlight", ("FlightCancelled",)),
        (("ReserveHotelFailed", "PaymentCancelled"), "CancelHotel", ("HotelCancelled",)),
        (("ProcessPaymentFailed",), "RefundPayment", ("PaymentCancelled",)),
    ]
    assert compensation_chain("ReserveHotel") == ["CancelHotel", "CancelFlight", "BookingFailed"]


def test_a_booking_flows_from_request_to_confirmation_and_the_log_keeps_every_event(dynamodb, log):
    events = run(log, booking())

    assert events == [
        "BookingRequested",
        "FlightReserved",
        "HotelReserved",
        "PaymentProcessed",
        "BookingConfirmed",
    ]
    assert verdict(*choreography.status(log.entries(SAGA))[:2]) == "confirmed"
    assert held(dynamodb) == {
        "flight:inventory#NH101": 3,
        "hotel:inventory#TOKYO-GRAND": 2,
        "flight:booking#trip-0001": "RESERVED",
        "hotel:booking#trip-0001": "RESERVED",
        "payment:booking#trip-0001": "RESERVED",
    }


FAILURES = {
    "flight": booking(flight={"flight_id": "NH101", "seats": 6}),
    "hotel": booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 4}),
    "payment": booking(payment={"amount": PAYMENT_LIMIT + 1, "currency": "JPY"}),
}


@pytest.mark.parametrize("service", [service.name for service in SERVICES])
@pytest.mark.parametrize("cause", ["business", "chaos"])
def test_a_failure_at_each_step_cancels_in_reverse_including_its_own_and_leaks_nothing(dynamodb, log, service, cause):
    document = FAILURES[service] if cause == "business" else booking(chaos={"fail_at": service})
    spec = next(spec for spec in SERVICES if spec.name == service)

    events = run(log, document)

    reached = SERVICES.index(spec)
    reserved = [choreography.reserved_event(earlier) for earlier in SERVICES[:reached]]
    cancelled = [choreography.cancelled_event(earlier) for earlier in reversed(SERVICES[: reached + 1])]
    assert events == ["BookingRequested", *reserved, f"{spec.reserve_state}Failed", *cancelled, "BookingFailed"]
    status, error, _ = choreography.status(log.entries(SAGA))
    assert (status, error) == ("FAILED", "ChaosFailure" if cause == "chaos" else _error(service))
    assert verdict(status, error) == "compensated"
    assert {key: value for key, value in held(dynamodb).items() if "inventory" in key} == {
        "flight:inventory#NH101": 5,
        "hotel:inventory#TOKYO-GRAND": 3,
    }
    assert "RESERVED" not in held(dynamodb).values()


def _error(service: str) -> str:
    return "PaymentDeclined" if service == "payment" else "SoldOut"


def test_a_cancel_that_fails_for_good_parks_the_booking_with_the_orchestrated_designs_state(dynamodb, log):
    events = run(log, booking(chaos={"fail_at": "payment", "fail_cancel": "hotel"}))

    assert events[-1] == "CompensationFailed"
    assert "BookingFailed" not in events
    entries = log.entries(SAGA)
    status, error, cause = choreography.status(entries)
    assert (status, error, verdict(status, error)) == ("FAILED", "CompensationFailed", "parked")
    parked = entries[-1].event.parked
    assert set(parked["reservations"]) == {"flight", "hotel"}
    assert set(parked["compensations"]) == {"payment"}
    assert parked["failure"]["Error"] == "ChaosFailure"
    assert parked["compensation_failure"]["Error"] == "ChaosFailure"
    assert "fail_cancel=hotel" in cause
    assert held(dynamodb)["hotel:booking#trip-0001"] == "RESERVED"  # what replay will release


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("fail_at", [None, "flight", "hotel", "payment"])
def test_late_and_repeated_deliveries_end_the_same_way_and_leak_nothing(dynamodb, log, seed, fail_at):
    document = booking(chaos={"fail_at": fail_at}) if fail_at else booking()

    events = run(log, document, Wire(log, random.Random(seed), duplicates=0.3))

    assert events.count("BookingConfirmed" if fail_at is None else "BookingFailed") == 1
    inventory = {key: value for key, value in held(dynamodb).items() if "inventory" in key}
    if fail_at is None:
        assert inventory == {"flight:inventory#NH101": 3, "hotel:inventory#TOKYO-GRAND": 2}
        assert set(held(dynamodb).values()) - {3, 2} == {"RESERVED"}
    else:
        assert inventory == {"flight:inventory#NH101": 5, "hotel:inventory#TOKYO-GRAND": 3}
        assert "RESERVED" not in held(dynamodb).values()


def test_a_reserve_that_crashes_is_declared_failed_by_its_own_cancel(dynamodb, log):
    wire = Wire(log)
    request(wire.bus("booking.bookings"), booking(chaos={"fail_at": "hotel"}), SAGA)
    requested = wire.queue.pop()
    wire.deliver(requested)  # flight reserves
    flight_reserved = wire.queue.pop()
    wire.bookings.record(flight_reserved)
    wire.queue.append(  # the hotel's reserve timed out: Lambda reports it
        {
            "id": "crash",
            "source": "lambda",
            "detail-type": FAILURE_RECORD,
            "detail": {
                "requestPayload": flight_reserved,
                "responsePayload": {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out"},
            },
        }
    )

    wire.run()

    events = [entry.type for entry in log.entries(SAGA)]
    assert events[-4:] == ["ReserveHotelFailed", "HotelCancelled", "FlightCancelled", "BookingFailed"]
    assert choreography.status(log.entries(SAGA))[1] == "Sandbox.Timedout"
    assert "RESERVED" not in held(dynamodb).values()


def test_an_event_that_is_not_a_sagas_is_refused_by_name(log):
    with pytest.raises(choreography.InvalidBooking):
        Participant(flight.service, lambda: None, 0).reserve({"detail": {"booking": {}}}, None)  # type: ignore[arg-type,return-value]
