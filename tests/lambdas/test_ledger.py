"""The ledger's own promises, straight against a table: restocking moves capacity without touching what is held,
and under any sequence of reserves, cancels and restocks, ``available + held = capacity``."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_saga.contract import BookingCancelled, BookingConflict, SoldOut
from booking_saga.ledger import RESERVED, CapacityBelowHeld, Claim, Ledger
from tests.lambdas.support import TABLES
from tests.strategies import examples

_ids = itertools.count()


@pytest.fixture
def ledger(dynamodb) -> Ledger:
    return Ledger(dynamodb.Table(TABLES["flight"]), "flight")


def claim(booking_id: str, owner: str = "execution-1") -> Claim:
    return Claim(booking_id, owner, f"details of {booking_id}")


def held(ledger: Ledger, resource_id: str, booking_ids: list[str]) -> int:
    """What the RESERVED records of these bookings hold of the resource."""
    records = [ledger.record(booking_id) for booking_id in booking_ids]
    return sum(
        int(record["quantity"])
        for record in records
        if record and record["status"] == RESERVED and record.get("resource_id") == resource_id
    )


def numbers(ledger: Ledger, resource_id: str, booking_ids: list[str]) -> tuple[int, int, int]:
    item = ledger.inventory(resource_id)
    return int(item["capacity"]), int(item["available"]), held(ledger, resource_id, booking_ids)


def test_restocking_moves_capacity_and_availability_by_the_same_delta(ledger):
    assert ledger.stock("NH101", 10).change == "created"
    ledger.reserve(claim("a"), {"resource_id": "NH101", "quantity": 4})

    assert ledger.stock("NH101", 10).change == "unchanged"
    assert numbers(ledger, "NH101", ["a"]) == (10, 6, 4)
    assert ledger.stock("NH101", 15).change == "changed"
    assert numbers(ledger, "NH101", ["a"]) == (15, 11, 4)
    assert ledger.stock("NH101", 4).available == 0
    assert numbers(ledger, "NH101", ["a"]) == (4, 0, 4)
    with pytest.raises(CapacityBelowHeld, match="flight NH101: bookings hold 4, so its capacity cannot go to 3"):
        ledger.stock("NH101", 3)
    assert numbers(ledger, "NH101", ["a"]) == (4, 0, 4)


def test_restocking_never_resells_what_is_held(ledger):
    """The bug this replaced: a 2-seat flight, 2 booked, stocked again, 2 more booked: 4 seats on 2."""
    ledger.stock("SMALL-1", 2)
    ledger.reserve(claim("a"), {"resource_id": "SMALL-1", "quantity": 2})

    ledger.stock("SMALL-1", 2)

    with pytest.raises(SoldOut):
        ledger.reserve(claim("b"), {"resource_id": "SMALL-1", "quantity": 2})
    assert numbers(ledger, "SMALL-1", ["a", "b"]) == (2, 0, 2)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 5), st.integers(1, 9)),
        st.tuples(st.just("cancel"), st.integers(0, 5), st.sampled_from(["execution-1", "execution-2"])),
        st.tuples(st.just("restock"), st.integers(0, 40)),
    ),
    max_size=25,
)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.integers(0, 30), operations=OPERATIONS)
def test_available_plus_held_is_capacity_after_every_operation(ledger, initial, operations):
    resource = f"FLIGHT-{next(_ids)}"
    bookings = [f"{resource}-booking-{number}" for number in range(6)]
    ledger.stock(resource, initial)
    for operation in operations:
        try:
            if operation[0] == "reserve":
                _, number, quantity = operation
                ledger.reserve(claim(bookings[number]), {"resource_id": resource, "quantity": quantity})
            elif operation[0] == "cancel":
                _, number, owner = operation
                ledger.cancel(claim(bookings[number], owner))
            else:
                ledger.stock(resource, operation[1])
        except (SoldOut, BookingCancelled, BookingConflict, CapacityBelowHeld):
            pass  # refused: and a refusal changes nothing, which the invariant checks too
        capacity, available, on_hold = numbers(ledger, resource, bookings)
        assert available + on_hold == capacity, operation
        assert 0 <= available <= capacity, operation
