"""The reserve and cancel handlers against moto's DynamoDB: capacity, idempotency, tombstones, bad input."""

import dataclasses
import json

import pytest

from booking_saga.contract import (
    BookingCancelled,
    ChaosFailure,
    Contract,
    InvalidBooking,
    PaymentDeclined,
    SoldOut,
    TransientFailure,
)
from tests.factories import booking
from tests.lambdas.support import CONTRACT, PAYMENT_LIMIT, TABLES


def table_items(dynamodb, service: str) -> dict[str, dict]:
    return {item["pk"]: item for item in dynamodb.Table(TABLES[service]).scan()["Items"]}


def available(dynamodb, service: str, resource_id: str) -> int:
    return int(table_items(dynamodb, service)[f"inventory#{resource_id}"]["available"])


def test_reserve_takes_capacity_and_records_the_booking(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)

    result = invoke("flight", "reserve", booking(), step="ReserveFlight")

    assert result["status"] == "RESERVED"
    assert (result["service"], result["booking_id"], result["resource_id"], result["quantity"]) == (
        "flight",
        "trip-0001",
        "NH101",
        2,
    )
    assert available(dynamodb, "flight", "NH101") == 3
    assert table_items(dynamodb, "flight")["booking#trip-0001"]["status"] == "RESERVED"


def test_replayed_reserve_returns_the_first_result_and_takes_nothing_more(dynamodb, stock, invoke):
    stock("hotel", "TOKYO-GRAND", 3)

    first = invoke("hotel", "reserve", booking())
    replay = invoke("hotel", "reserve", booking())

    assert replay == first
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 2


def test_not_enough_capacity_is_sold_out_and_changes_nothing(dynamodb, stock, invoke):
    stock("flight", "NH101", 1)

    with pytest.raises(SoldOut, match=r"ReserveFlight: flight NH101 has 1 left, 2 requested"):
        invoke("flight", "reserve", booking(), step="ReserveFlight")

    assert table_items(dynamodb, "flight").keys() == {"inventory#NH101"}
    assert available(dynamodb, "flight", "NH101") == 1


def test_unknown_flight_is_sold_out(dynamodb, invoke):
    with pytest.raises(SoldOut, match="unknown flight NH101"):
        invoke("flight", "reserve", booking())
    assert table_items(dynamodb, "flight") == {}


def test_capacity_is_never_oversold_by_successive_bookings(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)

    outcomes = []
    for n in range(4):
        try:
            invoke("flight", "reserve", booking(f"trip-{n}"))
            outcomes.append("reserved")
        except SoldOut:
            outcomes.append("sold out")

    assert outcomes == ["reserved", "reserved", "sold out", "sold out"]
    assert available(dynamodb, "flight", "NH101") == 1


def test_cancel_gives_capacity_back_once(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)
    invoke("flight", "reserve", booking())

    first = invoke("flight", "cancel", booking())
    second = invoke("flight", "cancel", booking())

    assert (first["status"], first["released"]) == ("CANCELLED", True)
    assert (second["status"], second["released"]) == ("CANCELLED", False)
    assert available(dynamodb, "flight", "NH101") == 5


def test_cancel_with_nothing_reserved_leaves_a_tombstone_that_refuses_a_late_reserve(dynamodb, stock, invoke):
    stock("hotel", "TOKYO-GRAND", 3)

    cancelled = invoke("hotel", "cancel", booking(), step="CancelHotel")
    with pytest.raises(BookingCancelled, match="ReserveHotel: hotel booking trip-0001 was already cancelled"):
        invoke("hotel", "reserve", booking(), step="ReserveHotel")

    assert (cancelled["status"], cancelled["released"]) == ("CANCELLED", False)
    assert table_items(dynamodb, "hotel")["booking#trip-0001"]["status"] == "CANCELLED"
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 3


def test_payment_is_charged_and_refunded(dynamodb, invoke):
    charged = invoke("payment", "reserve", booking())
    refunded = invoke("payment", "cancel", booking())

    assert (charged["status"], charged["amount"], charged["currency"]) == ("RESERVED", 84000, "JPY")
    assert (refunded["status"], refunded["released"]) == ("CANCELLED", True)
    assert table_items(dynamodb, "payment")["booking#trip-0001"]["status"] == "CANCELLED"


def test_payment_above_the_limit_is_declined_and_nothing_is_charged(dynamodb, invoke):
    expensive = booking(payment={"amount": PAYMENT_LIMIT + 1, "currency": "JPY"})

    with pytest.raises(PaymentDeclined, match=r"ProcessPayment: 100001 JPY is above the card limit of 100000"):
        invoke("payment", "reserve", expensive, step="ProcessPayment")

    assert table_items(dynamodb, "payment") == {}


@pytest.mark.parametrize(
    ("amount", "currency", "outcome"),
    [
        (100_000, "JPY", "RESERVED"),
        (100_001, "JPY", "PaymentDeclined"),
        (700, "USD", "RESERVED"),
        (700.01, "USD", "PaymentDeclined"),
        (0.01, "USD", "RESERVED"),
        (200, "KWD", "RESERVED"),
        (200.001, "KWD", "PaymentDeclined"),
        (100_000, "KWD", "PaymentDeclined"),  # the same number that JPY allows: the limit is per currency
        (0.01, "JPY", "InvalidBooking"),  # the yen has no minor unit
        (12.345, "USD", "InvalidBooking"),  # cents, not tenths of a cent
        (1.2345, "KWD", "InvalidBooking"),  # the dinar has three decimals
        (10, "EUR", "InvalidBooking"),  # a real currency this stack does not take
        (10, "ZZZ", "InvalidBooking"),  # not a currency at all
    ],
)
def test_each_currency_has_its_own_decimals_and_payment_limit(dynamodb, contract, invoke, amount, currency, outcome):
    contract(Contract.with_limits({"JPY": PAYMENT_LIMIT, "USD": 700, "KWD": 200}, chaos_enabled=False))
    trip = booking(payment={"amount": amount, "currency": currency})

    try:
        result = invoke("payment", "reserve", trip)["status"]
    except (PaymentDeclined, InvalidBooking) as error:
        result = type(error).__name__

    assert result == outcome
    held = [item for item in table_items(dynamodb, "payment").values() if item["status"] == "RESERVED"]
    assert len(held) == (outcome == "RESERVED")


def test_chaos_forces_the_named_step_to_fail_before_writing(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)

    with pytest.raises(ChaosFailure, match=r"ReserveFlight: forced to fail by chaos\.fail_at=flight"):
        invoke("flight", "reserve", booking(chaos={"fail_at": "flight"}), step="ReserveFlight")

    assert table_items(dynamodb, "flight").keys() == {"inventory#NH101"}
    assert available(dynamodb, "flight", "NH101") == 5


@pytest.mark.parametrize(
    "chaos",
    [
        {"fail_at": "flight"},
        {"transient": {"flight.reserve": 3}},
        {"duplicate": ["flight.reserve"]},
        {"timeout_after_write": "flight"},
        {},
        None,
    ],
)
def test_chaos_is_refused_where_it_is_disabled_and_nothing_is_written(dynamodb, chaos_off, stock, invoke, chaos):
    stock("flight", "NH101", 5)

    with pytest.raises(InvalidBooking, match="chaos is not enabled on this stack"):
        invoke("flight", "reserve", booking(chaos=chaos))
    cancelled = invoke("flight", "cancel", booking(chaos=chaos))

    assert cancelled["status"] == "NOTHING_TO_CANCEL"
    assert table_items(dynamodb, "flight").keys() == {"inventory#NH101"}


def test_a_cancel_where_chaos_is_off_ignores_the_chaos_of_a_booking_reserved_before(dynamodb, contract, stock, invoke):
    stock("flight", "NH101", 5)
    invoke("flight", "reserve", booking(chaos={"duplicate": ["flight.reserve"]}))
    contract(dataclasses.replace(CONTRACT, chaos_enabled=False))

    cancelled = invoke("flight", "cancel", booking(chaos={"fail_cancel": "flight"}))

    assert (cancelled["status"], cancelled["released"]) == ("CANCELLED", True)
    assert available(dynamodb, "flight", "NH101") == 5


def test_chaos_can_break_a_cancel_and_the_reservation_stays_until_a_cancel_succeeds(dynamodb, stock, invoke):
    stock("hotel", "TOKYO-GRAND", 3)
    invoke("hotel", "reserve", booking())

    with pytest.raises(ChaosFailure, match=r"CancelHotel: forced to fail by chaos\.fail_cancel=hotel"):
        invoke("hotel", "cancel", booking(chaos={"fail_cancel": "hotel"}), step="CancelHotel")
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 2

    invoke("hotel", "cancel", booking())
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 3


@pytest.mark.parametrize("action", ["reserve", "cancel"])
def test_chaos_transient_fails_n_times_then_works(dynamodb, stock, invoke, action):
    stock("hotel", "TOKYO-GRAND", 3)
    if action == "cancel":
        invoke("hotel", "reserve", booking())
    flaky = booking(chaos={"transient": {f"hotel.{action}": 2}})

    for attempt in (1, 2):
        with pytest.raises(TransientFailure, match=f"forced transient failure {attempt} of 2"):
            invoke("hotel", action, flaky)
    result = invoke("hotel", action, flaky)

    assert result["status"] == ("RESERVED" if action == "reserve" else "CANCELLED")
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == (2 if action == "reserve" else 3)
    assert invoke("hotel", action, flaky)["status"] == result["status"]  # the count is spent: no more failures


def test_chaos_duplicate_reserve_and_cancel_change_capacity_once(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)
    twice = booking(chaos={"duplicate": ["flight.reserve", "flight.cancel", "payment.reserve"]})

    reserved = invoke("flight", "reserve", twice)
    assert available(dynamodb, "flight", "NH101") == 3
    charged = invoke("payment", "reserve", twice)
    assert [item["status"] for item in table_items(dynamodb, "payment").values()] == ["RESERVED"]
    cancelled = invoke("flight", "cancel", twice)

    assert (reserved["status"], charged["status"], cancelled["status"]) == ("RESERVED", "RESERVED", "CANCELLED")
    assert available(dynamodb, "flight", "NH101") == 5


def test_chaos_timeout_after_write_leaves_the_write_for_the_cancel(dynamodb, stock, invoke):
    stock("hotel", "TOKYO-GRAND", 3)

    with pytest.raises(TimeoutError):
        invoke("hotel", "reserve", booking(chaos={"timeout_after_write": "hotel"}))
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 2  # the write landed before the timeout

    assert invoke("hotel", "cancel", booking())["released"] is True
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 3


MALFORMED = {
    "not an object": ["trip-0001"],
    "missing flight": {k: v for k, v in booking().items() if k != "flight"},
    "bad booking id": booking("trip 0001; DROP"),
    "booking id too long": booking("x" * 65),
    "seats as a string": booking(flight={"flight_id": "NH101", "seats": "2"}),
    "seats as a bool": booking(flight={"flight_id": "NH101", "seats": True}),
    "zero rooms": booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 0}),
    "too many seats": booking(flight={"flight_id": "NH101", "seats": 10**20}),
    "negative amount": booking(payment={"amount": -1, "currency": "JPY"}),
    "amount with fractions of a cent": booking(payment={"amount": 1.001, "currency": "USD"}),
    "cents of a yen": booking(payment={"amount": 0.01, "currency": "JPY"}),
    "unknown currency": booking(payment={"amount": 10, "currency": "ZZZ"}),
    "amount as a string": booking(payment={"amount": "10", "currency": "JPY"}),
    "infinite amount": booking(payment={"amount": float("inf"), "currency": "JPY"}),
    "lower-case currency": booking(payment={"amount": 10, "currency": "jpy"}),
    "extra field": booking(coupon="FREE"),
    "extra section field": booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 1, "suite": True}),
    "unknown chaos step": booking(chaos={"fail_at": "car"}),
    "unknown chaos function": booking(chaos={"transient": {"car.reserve": 1}}),
    "too many transient failures": booking(chaos={"transient": {"flight.cancel": 9}}),
    "transient count as a bool": booking(chaos={"transient": {"flight.cancel": True}}),
    "duplicate not a list": booking(chaos={"duplicate": "flight.reserve"}),
    "duplicate listing a function twice": booking(chaos={"duplicate": ["flight.reserve", "flight.reserve"]}),
    "chaos null": booking(chaos=None),
    "oversized": booking(chaos={"duplicate": ["flight.reserve"] * 2000}),
    "just over the size limit": booking(customer_id="c-42", padding="x" * 8200),
    "timeout on an unknown service": booking(chaos={"timeout_after_write": "car"}),
    "full-width digits in an id": booking(customer_id="c-\uff14\uff12"),
}


@pytest.mark.parametrize("document", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("service", TABLES)
def test_malformed_booking_is_invalid_before_anything_is_written(dynamodb, stock, invoke, service, document):
    stock("flight", "NH101", 5)
    stock("hotel", "TOKYO-GRAND", 3)
    before = table_items(dynamodb, service)

    with pytest.raises(InvalidBooking):
        invoke(service, "reserve", document)
    cancelled = invoke(service, "cancel", document)

    assert cancelled["status"] == "NOTHING_TO_CANCEL"
    assert table_items(dynamodb, service) == before


def test_invalid_booking_names_the_problem_and_the_step(invoke):
    with pytest.raises(InvalidBooking, match=r"^ReserveHotel: hotel.rooms must be a whole number from 1 to 9$"):
        invoke("hotel", "reserve", booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 0}), step="ReserveHotel")


def test_chaos_oversized_result_writes_then_answers_with_more_than_a_state_may_hold(dynamodb, stock, invoke):
    """The execution then fails with States.DataLimitExceeded, which no catch sees: the reconciler's case."""
    stock("hotel", "TOKYO-GRAND", 3)

    result = invoke("hotel", "reserve", booking(chaos={"oversized_result": "hotel"}))

    assert len(json.dumps(result).encode()) > 256 * 1024
    assert result["status"] == "RESERVED"
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 2  # the write landed first
