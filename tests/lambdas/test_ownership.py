"""Who owns what is held: a record belongs to the execution that wrote it, for the booking it was made for.

Another execution with the same booking id (a reused name, a raw StartExecution, a replayed API call once
Step Functions forgot the first) takes nothing and, when it compensates, releases nothing of the first.
"""

import pytest

from booking_saga.contract import BookingCancelled, BookingConflict, Contract
from tests.factories import booking
from tests.lambdas.support import EXECUTION, TABLES

INTRUDER = EXECUTION.replace(":trip-0001", ":trip-0001-again")


def record(dynamodb, service: str, booking_id: str = "trip-0001") -> dict | None:
    return dynamodb.Table(TABLES[service]).get_item(Key={"pk": f"booking#{booking_id}"}).get("Item")


def available(dynamodb, service: str, resource_id: str) -> int:
    return int(dynamodb.Table(TABLES[service]).get_item(Key={"pk": f"inventory#{resource_id}"})["Item"]["available"])


@pytest.mark.parametrize(("service", "step"), [("flight", "ReserveFlight"), ("payment", "ProcessPayment")])
def test_another_execution_with_the_same_booking_id_takes_nothing_and_releases_nothing(
    dynamodb, stock, invoke, service, step
):
    stock("flight", "NH101", 5)
    first = invoke(service, "reserve", booking())
    held = record(dynamodb, service)

    with pytest.raises(BookingConflict, match=rf"^{step}: {service} booking trip-0001 belongs to another execution$"):
        invoke(service, "reserve", booking(), step=step, execution=INTRUDER)
    undone = invoke(service, "cancel", booking(), execution=INTRUDER)

    assert (undone["status"], undone["released"]) == ("NOT_OWNED", False)
    assert record(dynamodb, service) == held
    assert held["owner"] == EXECUTION
    assert available(dynamodb, "flight", "NH101") == (3 if service == "flight" else 5)
    assert invoke(service, "reserve", booking()) == first  # the owner's replay still finds it


def test_the_same_execution_with_other_details_is_a_conflict_and_its_cancel_releases_nothing(dynamodb, stock, invoke):
    stock("hotel", "TOKYO-GRAND", 5)
    invoke("hotel", "reserve", booking())
    other = booking(hotel={"hotel_id": "TOKYO-GRAND", "rooms": 3})

    with pytest.raises(BookingConflict, match="hotel booking trip-0001 was made for other details"):
        invoke("hotel", "reserve", other)
    undone = invoke("hotel", "cancel", other)

    assert undone["status"] == "NOT_OWNED"
    assert available(dynamodb, "hotel", "TOKYO-GRAND") == 4
    assert record(dynamodb, "hotel")["status"] == "RESERVED"


def test_a_tombstone_belongs_to_the_execution_that_left_it(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)
    invoke("flight", "cancel", booking(), execution=INTRUDER)  # its cancel ran before anything was reserved

    with pytest.raises(BookingConflict, match="belongs to another execution"):
        invoke("flight", "reserve", booking())
    with pytest.raises(BookingCancelled):
        invoke("flight", "reserve", booking(), execution=INTRUDER)  # its own late reserve

    assert available(dynamodb, "flight", "NH101") == 5
    assert record(dynamodb, "flight")["owner"] == INTRUDER


def test_chaos_does_not_change_whose_booking_it_is(dynamodb, stock, invoke):
    """The fingerprint leaves chaos out: `saga replay` runs the cancels without the chaos that broke them."""
    stock("flight", "NH101", 5)
    invoke("flight", "reserve", booking(chaos={"fail_cancel": "flight"}))

    released = invoke("flight", "cancel", booking())

    assert (released["status"], released["released"]) == ("CANCELLED", True)
    assert available(dynamodb, "flight", "NH101") == 5


def test_a_cancel_gives_back_what_the_record_says_under_a_stricter_contract(dynamodb, contract, stock, invoke):
    """A booking reserved under older rules is still undone: the record, not today's validator, decides."""
    stock("flight", "NH101", 5)
    in_dollars = booking(payment={"amount": 12.5, "currency": "USD"})
    invoke("flight", "reserve", in_dollars)
    invoke("payment", "reserve", in_dollars)
    contract(Contract.with_limits({"JPY": 100_000}, chaos_enabled=True))  # the stack stops taking dollars

    flight = invoke("flight", "cancel", in_dollars)
    payment = invoke("payment", "cancel", in_dollars)

    assert (flight["status"], flight["released"], payment["status"], payment["released"]) == (
        "CANCELLED",
        True,
        "CANCELLED",
        True,
    )
    assert available(dynamodb, "flight", "NH101") == 5


def test_an_invocation_without_its_execution_is_refused(dynamodb, stock, invoke):
    stock("flight", "NH101", 5)

    with pytest.raises(Exception, match="the invocation must name its execution"):
        invoke("flight", "reserve", booking(), execution=None)
    with pytest.raises(Exception, match="the invocation must name its execution"):
        invoke("flight", "cancel", booking(), execution="")

    assert record(dynamodb, "flight") is None
