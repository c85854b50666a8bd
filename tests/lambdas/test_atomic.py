"""The atomic design's transaction against moto's DynamoDB: all of the trip or none of it, the saga's errors."""

import pytest

import flight
import hotel
import payment
from booking_saga.atomic import CONFIRMED, ROLLED_BACK, AtomicBooking, status
from booking_saga.contract import InvalidBooking, fingerprint
from booking_saga.executions import BookingRegistry, verdict
from tests.factories import booking
from tests.lambdas.support import PAYMENT_LIMIT, LambdaContext, held

INSTANCE = "atomic:trip-0001:1"


@pytest.fixture
def bookings(dynamodb):
    return dynamodb.create_table(
        TableName="bookings",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def atomic(bookings, powertools, stock):
    stock("flight", "NH101", 5)
    stock("hotel", "TOKYO-GRAND", 3)
    return AtomicBooking([flight.service, hotel.service, payment.service], lambda: bookings, retries=3)


def book(atomic, bookings, document: dict, instance: str = INSTANCE) -> dict:
    """Accept the booking for ``instance``, as ``saga book`` does, then run the transaction."""
    BookingRegistry(bookings).accept(document["booking_id"], fingerprint(document), instance)
    return atomic.book({"instance": instance, "booking": document}, LambdaContext())


NOTHING_HELD = {"flight:inventory#NH101": 5, "hotel:inventory#TOKYO-GRAND": 3}


def test_a_booking_takes_seat_room_and_charge_in_one_transaction(dynamodb, atomic, bookings):
    answer = book(atomic, bookings, booking())

    assert answer["outcome"] == CONFIRMED
    assert held(dynamodb) == {
        "flight:inventory#NH101": 3,
        "hotel:inventory#TOKYO-GRAND": 2,
        "flight:booking#trip-0001": "RESERVED",
        "hotel:booking#trip-0001": "RESERVED",
        "payment:booking#trip-0001": "RESERVED",
    }
    assert verdict(*status(BookingRegistry(bookings).record("trip-0001"))[:2]) == "confirmed"


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (booking(flight={"flight_id": "NH101", "seats": 6}), "SoldOut"),
        (booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 4}), "SoldOut"),
        (booking(hotel={"hotel_id": "NOWHERE", "rooms": 1}), "SoldOut"),
        (booking(payment={"amount": PAYMENT_LIMIT + 1, "currency": "JPY"}), "PaymentDeclined"),
        (booking(chaos={"fail_at": "flight"}), "ChaosFailure"),
        (booking(chaos={"fail_at": "hotel"}), "ChaosFailure"),
        (booking(chaos={"fail_at": "payment"}), "ChaosFailure"),
        (booking(flight={"flight_id": "NH101"}), "InvalidBooking"),
    ],
    ids=[
        "flight-sold-out",
        "hotel-sold-out",
        "unknown-hotel",
        "declined",
        "chaos-flight",
        "chaos-hotel",
        "chaos-payment",
        "invalid",
    ],
)
def test_a_refusal_anywhere_rolls_back_the_whole_trip(dynamodb, atomic, bookings, document, error):
    answer = book(atomic, bookings, document)

    assert (answer["outcome"], answer["error"]) == (ROLLED_BACK, error)
    assert held(dynamodb) == NOTHING_HELD
    record = BookingRegistry(bookings).record("trip-0001")
    assert record["error"] == error
    assert verdict(*status(record)[:2]) == ("refused" if error == "InvalidBooking" else "rolled back")


def test_the_first_refusing_service_in_the_sagas_order_is_named(dynamodb, atomic, bookings):
    document = booking(flight={"flight_id": "NH101", "seats": 6}, hotel={"hotel_id": "TOKYO-GRAND", "rooms": 4})

    answer = book(atomic, bookings, document)

    assert answer["cause"].startswith("flight NH101 has 5 left")


def test_a_repeated_invocation_answers_the_first_outcome_and_takes_nothing_more(dynamodb, atomic, bookings):
    book(atomic, bookings, booking())

    again = atomic.book({"instance": INSTANCE, "booking": booking()}, LambdaContext())

    assert (again["outcome"], again["replayed"]) == (CONFIRMED, True)
    assert held(dynamodb)["flight:inventory#NH101"] == 3


@pytest.mark.parametrize("function", ["flight.reserve", "payment.reserve"])
def test_chaos_duplicate_and_transient_failures_change_nothing_twice(dynamodb, atomic, bookings, function):
    answer = book(atomic, bookings, booking(chaos={"duplicate": [function], "transient": {function: 2}}))

    assert answer["outcome"] == CONFIRMED
    assert held(dynamodb)["flight:inventory#NH101"] == 3


def test_a_booking_accepted_for_another_instance_is_a_conflict_and_writes_nothing(dynamodb, atomic, bookings):
    BookingRegistry(bookings).accept("trip-0001", fingerprint(booking()), "someone-else")

    answer = atomic.book({"instance": INSTANCE, "booking": booking()}, LambdaContext())

    assert (answer["outcome"], answer["error"]) == (ROLLED_BACK, "BookingConflict")
    assert held(dynamodb) == NOTHING_HELD
    assert "outcome" not in BookingRegistry(bookings).record("trip-0001")


@pytest.mark.parametrize("event", [None, [], {"booking": booking()}, {"instance": INSTANCE, "booking": {}}])
def test_an_invocation_naming_no_instance_or_booking_id_is_refused_and_records_nothing(
    dynamodb, atomic, bookings, event
):
    with pytest.raises(InvalidBooking):
        atomic.book(event, LambdaContext())

    assert held(dynamodb) == NOTHING_HELD
    assert bookings.scan()["Items"] == []


@pytest.mark.parametrize(
    "later",
    [{"payment": {"amount": PAYMENT_LIMIT + 1, "currency": "JPY"}}, {"chaos": {"fail_at": "payment"}}],
    ids=["declined", "chaos"],
)
def test_a_sold_out_earlier_in_the_sagas_order_is_reported_before_a_later_refusal(dynamodb, atomic, bookings, later):
    answer = book(atomic, bookings, booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 4}, **later))

    assert (answer["error"], answer["cause"]) == ("SoldOut", "hotel TOKYO-GRAND has 3 left, 4 requested")
    assert held(dynamodb) == NOTHING_HELD
