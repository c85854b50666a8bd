"""The ledger's own promises, straight against a table: restocking moves capacity without touching what is held,
and under any sequence of reserves, cancels and restocks, ``available + held = capacity``."""

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_saga.contract import BookingCancelled, BookingConflict, SoldOut, TransientFailure
from booking_saga.ledger import RESERVED, CapacityBelowHeld, Claim, ConflictRetry, Ledger, booking_key, inventory_key
from stacks.function import LAMBDA_TIMEOUT
from tests.lambdas.support import TABLES
from tests.strategies import examples

_ids = itertools.count()


@pytest.fixture
def ledger(dynamodb) -> Ledger:
    return Ledger(dynamodb.Table(TABLES["flight"]), "flight")


def claim(booking_id: str, owner: str = "execution-1") -> Claim:
    return Claim(booking_id, owner, f"details of {booking_id}")


def numbers(ledger: Ledger, resource_id: str, booking_ids: list[str]) -> tuple[int, int, int]:
    """The resource's capacity and availability, and what the RESERVED records of these bookings hold of it: from
    one strongly consistent read of all their items."""
    keys = [inventory_key(resource_id), *map(booking_key, booking_ids)]
    request = {ledger.table.name: {"Keys": keys, "ConsistentRead": True}}
    answer = ledger.table.meta.client.batch_get_item(RequestItems=request)
    items = {item["pk"]: item for item in answer["Responses"][ledger.table.name]}
    inventory = items[inventory_key(resource_id)["pk"]]
    records = [items.get(booking_key(booking_id)["pk"]) for booking_id in booking_ids]
    held = sum(
        int(record["quantity"])
        for record in records
        if record and record["status"] == RESERVED and record.get("resource_id") == resource_id
    )
    return int(inventory["capacity"]), int(inventory["available"]), held


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
    try:
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
    finally:  # the next example finds the table as this one did: a transaction copies the whole table in moto
        with ledger.table.batch_writer() as batch:
            for key in (inventory_key(resource), *map(booking_key, bookings)):
                batch.delete_item(Key=key)


class Conflicts:
    """Makes the ledger's client answer its next ``count`` writes of one kind as DynamoDB does while another
    transaction is in progress on the item (nothing written); ``landing`` writes first, as if the write landed and
    its answer were lost, so that the retry meets its own write."""

    def __init__(self, monkeypatch, ledger: Ledger, operation: str, count: int, *, landing: bool = False):
        self.client = ledger._client
        self.left = count
        self.landing = landing
        self.operation = operation
        write = getattr(self.client, operation)

        def conflicting(**request):
            if self.left == 0:
                return write(**request)
            self.left -= 1
            if self.landing:
                write(**request)
            raise self.error(request)

        monkeypatch.setattr(self.client, operation, conflicting)

    def error(self, request: dict) -> Exception:
        if self.operation != "transact_write_items":
            message = "Transaction is ongoing for the item"
            error = {"Error": {"Code": "TransactionConflictException", "Message": message}}
            return self.client.exceptions.TransactionConflictException(error, "PutItem")
        # The last item (a flight's inventory) is held; the others went through.
        reasons = [{"Code": "None"} for _ in request["TransactItems"][1:]]
        conflict = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        cancelled = {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [*reasons, conflict],
        }
        return self.client.exceptions.TransactionCanceledException(cancelled, "TransactWriteItems")


def retrying(ledger: Ledger, retry: ConflictRetry) -> tuple[Ledger, list[float], list[str]]:
    """The ledger's table with ``retry``'s attempts and delays, the waits it slept and the retries it reported."""
    slept: list[float] = []
    reported: list[str] = []
    ledger = Ledger(
        ledger.table,
        "flight",
        retry=dataclasses.replace(retry, sleep=slept.append),
        on_retry=lambda: reported.append("retry"),
    )
    return ledger, slept, reported


def test_a_reserve_that_meets_a_transaction_in_progress_is_retried_after_a_jittered_wait(monkeypatch, ledger):
    ledger.stock("HOT-1", 5)
    ledger, slept, reported = retrying(ledger, ConflictRetry())
    Conflicts(monkeypatch, ledger, "transact_write_items", 3)

    reserved = ledger.reserve(claim("hot-a"), {"resource_id": "HOT-1", "quantity": 2})

    assert not reserved.replayed
    assert reported == ["retry"] * 3
    assert len(slept) == 3
    assert all(0 <= wait <= min(0.4, 0.02 * 2**retry) for retry, wait in enumerate(slept))
    assert numbers(ledger, "HOT-1", ["hot-a"]) == (5, 3, 2)


def test_a_reserve_that_keeps_conflicting_fails_transiently_and_takes_nothing(monkeypatch, ledger):
    ledger.stock("HOT-2", 5)
    ledger, slept, reported = retrying(ledger, ConflictRetry(attempts=4))
    Conflicts(monkeypatch, ledger, "transact_write_items", 4)

    with pytest.raises(TransientFailure, match="kept meeting other transactions in progress"):
        ledger.reserve(claim("hot-b"), {"resource_id": "HOT-2", "quantity": 2})

    assert (len(reported), len(slept)) == (3, 3)
    assert ledger.record("hot-b") is None
    assert numbers(ledger, "HOT-2", ["hot-b"]) == (5, 5, 0)


def test_a_retried_reserve_whose_first_attempt_landed_replays_it_and_takes_nothing_more(monkeypatch, ledger):
    ledger.stock("HOT-3", 5)
    ledger, _, reported = retrying(ledger, ConflictRetry())
    Conflicts(monkeypatch, ledger, "transact_write_items", 1, landing=True)

    reserved = ledger.reserve(claim("hot-c"), {"resource_id": "HOT-3", "quantity": 2})

    assert reserved.replayed
    assert reported == ["retry"]
    assert numbers(ledger, "HOT-3", ["hot-c"]) == (5, 3, 2)


def test_a_cancel_that_meets_transactions_in_progress_is_retried(monkeypatch, ledger):
    ledger.stock("HOT-4", 5)
    ledger.reserve(claim("hot-d"), {"resource_id": "HOT-4", "quantity": 2})
    ledger, _, reported = retrying(ledger, ConflictRetry())
    Conflicts(monkeypatch, ledger, "transact_write_items", 2)
    Conflicts(monkeypatch, ledger, "put_item", 2)

    assert ledger.cancel(claim("hot-d"))["released"]
    assert ledger.cancel(claim("hot-e"))["status"] == "CANCELLED"  # nothing reserved: a tombstone, put on retry

    assert reported == ["retry"] * 4
    assert numbers(ledger, "HOT-4", ["hot-d"]) == (5, 5, 0)


def test_a_failed_condition_is_an_answer_not_a_conflict(monkeypatch, ledger):
    """Where a condition failed, the transaction is not retried, whatever else the reasons say."""
    ledger.stock("HOT-5", 1)
    ledger.reserve(claim("hot-f"), {"resource_id": "HOT-5", "quantity": 1})
    ledger, slept, reported = retrying(ledger, ConflictRetry())

    with pytest.raises(SoldOut):
        ledger.reserve(claim("hot-g"), {"resource_id": "HOT-5", "quantity": 1})

    assert (slept, reported) == ([], [])


def test_the_conflict_retries_wait_at_most_half_a_functions_timeout():
    """The ledger retries inside a handler: its longest run of waits must leave the handler time to answer before
    Lambda's timeout (a timed-out reserve is compensated, not retried)."""
    retry = ConflictRetry()
    longest = sum(min(retry.cap, retry.base * 2**n) for n in range(retry.attempts - 1))

    assert longest <= LAMBDA_TIMEOUT.to_seconds() / 2
