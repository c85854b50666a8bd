"""The reservation ledger every service shares: reserve and cancel for one owner, restock without touching holds.

Each service owns one table keyed by ``pk``. ``booking#<id>`` items record a
reservation (``RESERVED``) or its tombstone (``CANCELLED``), with the execution
that wrote it (its ``owner``) and the ``fingerprint`` of the booking it was made
for; ``inventory#<id>`` items hold a resource's ``capacity`` and what is left to
sell (``available``). Reserving writes the record and takes the capacity in one
conditional transaction, so concurrent sagas cannot oversell; cancelling flips
the record and gives back what the record says it took, the same way, and only
for the record's own owner. For every resource, at all times:
``available + what RESERVED records hold = capacity``.

A hot flight or hotel is one item every booking writes, so writes meet DynamoDB's
transaction conflicts there; the ledger retries them (``ConflictRetry``).
"""

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer

from booking_saga.contract import BookingCancelled, BookingConflict, SoldOut, TransientFailure

RESERVED = "RESERVED"
CANCELLED = "CANCELLED"
# A cancel's answers where it touches nothing: another execution (or other details) holds the booking id;
# or nothing is recorded and the booking is one no reserve accepts, so none can come late.
NOT_OWNED = "NOT_OWNED"
NOTHING_TO_CANCEL = "NOTHING_TO_CANCEL"
_ATTEMPTS = 3  # reads and conditional writes that lost a race to another writer of the same item
TRANSACTION_CONFLICT = "TransactionConflict"  # a CancellationReason's code: another transaction holds the item
T = TypeVar("T")


@dataclass(frozen=True)
class ConflictRetry:
    """How the ledger retries a write DynamoDB refused because another transaction was in progress on one of its
    items: a TransactWriteItems cancelled with only ``TransactionConflict`` reasons (and ``None`` for the other
    items), or a PutItem, UpdateItem or DeleteItem failing with ``TransactionConflictException``. Nothing was
    written, and the SDK does not retry either (botocore retries neither in its standard or legacy mode).

    The retry belongs here, around the write, rather than only in the state machine: a transaction is in
    progress for milliseconds, so a retry a few milliseconds later usually gets through, while a Step Functions
    retry waits a second or more, and costs a state transition and an invocation. Delays are exponential with
    full jitter (a random delay between 0 and ``base * 2**n``, at most ``cap``), which spreads contenders for one
    hot item apart instead of sending them back together. Sized for 200 bookings at once on one flight: the item
    is busy for a transaction's latency (about 10 to 25 ms on AWS) per seat sold or given back, so selling 50
    seats and releasing 20 keeps it busy for about 1 to 2 s; 10 attempts wait about 1.1 s in all on average and at
    most 2.2 s, less than half the functions' 5 s timeout. After the last attempt the write raises ``TransientFailure``,
    which the state machine retries a few seconds later (and a compensation, longer): the backstop for
    contention that lasts longer than that.

    Retrying is safe: a cancelled transaction or a refused write changed nothing, and a reserve whose write did
    land (the answer lost, the SDK retrying) finds its own record and replays it."""

    attempts: int = 10
    base: float = 0.02
    cap: float = 0.4
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterator[float]:
        """The wait before each retry, one fewer than the attempts."""
        for retry in range(self.attempts - 1):
            yield random.uniform(0, min(self.cap, self.base * 2**retry))

    def run(self, client: Any, write: Callable[[], T], what: str, on_retry: Callable[[], None] = lambda: None) -> T:
        """Make one write with ``client``, and again after a transaction conflict (``on_retry`` told of each);
        after the last attempt, ``TransientFailure`` naming ``what``. Every other error is raised as it came."""
        delays = self.delays()
        while True:
            try:
                return write()
            except (
                client.exceptions.TransactionCanceledException,
                client.exceptions.TransactionConflictException,
            ) as error:
                if not _conflicted(error):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise TransientFailure(f"{what} kept meeting other transactions in progress; retry") from None
                on_retry()
                self.sleep(delay)


@dataclass(frozen=True)
class Claim:
    """Who reserves or cancels: the booking, the execution that owns what is reserved for it, and the
    fingerprint of the booking's details (another execution's, or other details, own nothing here)."""

    booking_id: str
    owner: str
    fingerprint: str

    def owns(self, record: dict[str, Any]) -> bool:
        return record.get("owner") == self.owner and record.get("fingerprint") == self.fingerprint


@dataclass(frozen=True)
class Reserved:
    """A reserve's result as the state machine records it, and whether it found its own earlier write."""

    result: dict[str, Any]
    replayed: bool


@dataclass(frozen=True)
class Restock:
    """What loading a catalog entry did to one resource."""

    resource_id: str
    change: str  # "created", "changed" or "unchanged"
    capacity: int
    available: int


class CapacityBelowHeld(ValueError):
    """A restock would set a capacity below what bookings hold now."""


def booking_key(booking_id: str) -> dict[str, str]:
    return {"pk": f"booking#{booking_id}"}


def inventory_key(resource_id: str) -> dict[str, str]:
    return {"pk": f"inventory#{resource_id}"}


class Ledger:
    """One service's reservations, in its own DynamoDB table (a boto3 ``Table``).

    ``on_retry`` is told of every write retried after a transaction conflict (``ConflictRetry``).
    """

    def __init__(
        self,
        table: Any,
        service: str,
        *,
        retry: ConflictRetry = ConflictRetry(),  # frozen, so one shared default is safe
        on_retry: Callable[[], None] = lambda: None,
    ):
        self.table = table
        self.service = service
        self._client = table.meta.client
        self._retry = retry
        self._on_retry = on_retry

    def record(self, booking_id: str) -> dict[str, Any] | None:
        """The booking's reservation or tombstone, as last written (a strongly consistent read)."""
        item: dict[str, Any] | None = self.table.get_item(Key=booking_key(booking_id), ConsistentRead=True).get("Item")
        return item

    def inventory(self, resource_id: str) -> dict[str, Any] | None:
        """A flight's or hotel's ``capacity`` and ``available``; None for one never stocked."""
        item: dict[str, Any] | None = self.table.get_item(Key=inventory_key(resource_id), ConsistentRead=True).get(
            "Item"
        )
        return item

    def available(self, resource_id: str) -> int | None:
        """What is left to sell of a flight or hotel; None for one never stocked."""
        item = self.inventory(resource_id)
        return None if item is None else int(item["available"])

    def contents(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every inventory item and every booking record, by id (a full, strongly consistent scan)."""
        inventory, bookings, page = [], [], {"ConsistentRead": True}
        while True:
            response = self.table.scan(**page)
            for item in response["Items"]:
                if item["pk"].startswith("inventory#"):
                    inventory.append(item)
                elif item["pk"].startswith("booking#"):
                    bookings.append(item)
            if "LastEvaluatedKey" not in response:
                break
            page["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(inventory, key=lambda i: i["resource_id"]), sorted(bookings, key=lambda i: i["booking_id"])

    def stock(self, resource_id: str, capacity: int) -> Restock:
        """Set a resource's capacity (loading a catalog): a new one is created with all of it on sale; an
        existing one moves ``capacity`` and ``available`` by the same delta, so what bookings hold stays held.
        Raises ``CapacityBelowHeld`` rather than set a capacity below what is held; the same capacity twice
        changes nothing."""
        for _ in range(_ATTEMPTS):
            item = self.inventory(resource_id)
            try:
                if item is None:
                    self._write(
                        f"stocking {resource_id}",
                        lambda: self.table.put_item(
                            Item={**inventory_key(resource_id), "resource_id": resource_id, "capacity": capacity}
                            | {"available": capacity},
                            ConditionExpression="attribute_not_exists(pk)",
                        ),
                    )
                    return Restock(resource_id, "created", capacity, capacity)
                return self._restock(resource_id, int(item["capacity"]), int(item["available"]), capacity)
            except self._client.exceptions.ConditionalCheckFailedException:
                continue  # a booking or another restock changed it in between: look again
        raise TransientFailure(f"{self.service} {resource_id} kept changing while it was restocked; retry")

    def _restock(self, resource_id: str, old: int, available: int, capacity: int) -> Restock:
        held = old - available
        if capacity < held:
            raise CapacityBelowHeld(
                f"{self.service} {resource_id}: bookings hold {held}, so its capacity cannot go to {capacity}"
            )
        if capacity == old:
            return Restock(resource_id, "unchanged", old, available)
        delta = capacity - old
        item = self._write(
            f"restocking {resource_id}",
            lambda: self.table.update_item(
                Key=inventory_key(resource_id),
                UpdateExpression="SET #capacity = :capacity, available = available + :delta",
                # capacity unchanged since the read, and (shrinking) still no more held than the new capacity
                ConditionExpression="#capacity = :old AND available >= :needed",
                ExpressionAttributeNames={"#capacity": "capacity"},
                ExpressionAttributeValues={
                    ":capacity": capacity,
                    ":delta": delta,
                    ":old": old,
                    ":needed": max(0, -delta),
                },
                ReturnValues="ALL_NEW",
            ),
        )["Attributes"]
        return Restock(resource_id, "changed", capacity, int(item["available"]))

    def reserve(self, claim: Claim, holding: dict[str, Any]) -> Reserved:
        """Reserve ``holding`` once for ``claim``: where it names a ``resource_id``, its ``quantity`` is taken
        from that resource's inventory in the same transaction.

        A replay returns the first result (and says it replayed), a reserve after its cancel is refused
        (``BookingCancelled``), and a booking id another execution or other details hold is refused
        (``BookingConflict``); a refusal takes nothing."""
        record, writes = self.reservation(claim, holding)
        try:
            self._transact(f"reservation for {claim.booking_id}", writes)
        except self._client.exceptions.TransactionCanceledException as error:
            return self.refused(claim, holding, failed_conditions(error))
        return Reserved(self._result(record), replayed=False)

    def reservation(self, claim: Claim, holding: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The record a reservation writes, and the transaction items that write it and take its capacity (for
        ``reserve``, or for a transaction spanning several services' tables)."""
        record = {
            **booking_key(claim.booking_id),
            "booking_id": claim.booking_id,
            "status": RESERVED,
            "owner": claim.owner,
            "fingerprint": claim.fingerprint,
            "reserved_at": _now(),
            **holding,
        }
        writes = [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": record,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        ]
        if "resource_id" in holding:
            writes.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": inventory_key(holding["resource_id"]),
                        "UpdateExpression": "SET available = available - :quantity",
                        "ConditionExpression": "available >= :quantity",
                        "ExpressionAttributeValues": {":quantity": holding["quantity"]},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        return record, writes

    def refused(self, claim: Claim, holding: dict[str, Any], failed: list[dict[str, Any] | None]) -> Reserved:
        """Why a reservation's writes (``reservation``) were cancelled, from what ``failed_conditions`` read for each:
        its own earlier write (a replay), or ``BookingConflict``, ``BookingCancelled``, ``SoldOut``; else a
        conflicting writer (``TransientFailure``, worth retrying)."""
        existing, inventory = [*failed, None, None][:2]
        if existing is not None:
            return self._existing(claim, existing)
        if "resource_id" in holding and inventory is not None:
            raise SoldOut(_sold_out_message(self.service, holding, inventory)) from None
        raise TransientFailure(f"{self.service} reservation for {claim.booking_id} was cancelled; retry") from None

    def _existing(self, claim: Claim, existing: dict[str, Any]) -> Reserved:
        if existing.get("owner") != claim.owner:
            raise BookingConflict(f"{self.service} booking {claim.booking_id} belongs to another execution")
        if existing.get("fingerprint") != claim.fingerprint:
            raise BookingConflict(f"{self.service} booking {claim.booking_id} was made for other details")
        if existing["status"] == CANCELLED:
            raise BookingCancelled(f"{self.service} booking {claim.booking_id} was already cancelled")
        return Reserved(self._result(existing), replayed=True)

    def cancel(self, claim: Claim, *, tombstone: bool = True) -> dict[str, Any]:
        """Undo what ``claim`` reserved, giving back what its record says it took; safe to repeat.

        Where nothing is recorded it leaves a tombstone, so a late reserve of the same execution is refused
        (``tombstone=False``: it answers ``NOTHING_TO_CANCEL`` instead). Another owner's record is left alone
        (``NOT_OWNED``)."""
        for _ in range(_ATTEMPTS):
            existing = self.record(claim.booking_id)
            try:
                if existing is None:
                    return self._leave_tombstone(claim) if tombstone else self._answer(claim, NOTHING_TO_CANCEL)
                if not claim.owns(existing):
                    return self._answer(claim, NOT_OWNED)
                if existing["status"] == CANCELLED:
                    return self._result(existing, released=False)
                return self._release(claim, existing)
            except (
                self._client.exceptions.ConditionalCheckFailedException,
                self._client.exceptions.TransactionCanceledException,
            ):
                continue  # a reserve or cancel of the same booking landed in between: look again
        raise TransientFailure(f"{self.service} cancel of {claim.booking_id} kept conflicting; retry")

    def _leave_tombstone(self, claim: Claim) -> dict[str, Any]:
        tombstone = {
            **booking_key(claim.booking_id),
            "booking_id": claim.booking_id,
            "status": CANCELLED,
            "owner": claim.owner,
            "fingerprint": claim.fingerprint,
            "cancelled_at": _now(),
        }
        self._write(
            f"tombstone for {claim.booking_id}",
            lambda: self.table.put_item(Item=tombstone, ConditionExpression="attribute_not_exists(pk)"),
        )
        return self._result(tombstone, released=False)

    def _release(self, claim: Claim, reservation: dict[str, Any]) -> dict[str, Any]:
        cancelled_at = _now()
        writes = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": booking_key(claim.booking_id),
                    "UpdateExpression": "SET #status = :cancelled, cancelled_at = :now",
                    # Still reserved, still ours: of two cancels racing, exactly one gives the capacity back.
                    "ConditionExpression": "#status = :reserved AND #owner = :owner AND fingerprint = :fingerprint",
                    "ExpressionAttributeNames": {"#status": "status", "#owner": "owner"},
                    "ExpressionAttributeValues": {
                        ":cancelled": CANCELLED,
                        ":reserved": RESERVED,
                        ":now": cancelled_at,
                        ":owner": claim.owner,
                        ":fingerprint": claim.fingerprint,
                    },
                }
            }
        ]
        if "resource_id" in reservation:
            writes.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": inventory_key(reservation["resource_id"]),
                        "UpdateExpression": "SET available = available + :quantity",
                        "ExpressionAttributeValues": {":quantity": reservation["quantity"]},
                    }
                }
            )
        self._transact(f"cancel of {claim.booking_id}", writes)
        return self._result({**reservation, "status": CANCELLED, "cancelled_at": cancelled_at}, released=True)

    def _transact(self, what: str, writes: list[dict[str, Any]]) -> None:
        """One TransactWriteItems, retried while it only conflicts (``ConflictRetry``); a cancellation for any
        other reason (a condition) is raised as it came."""
        self._write(what, lambda: self._client.transact_write_items(TransactItems=writes))

    def _write(self, what: str, write: Callable[[], T]) -> T:
        return self._retry.run(self._client, write, f"{self.service} {what}", self._on_retry)

    def _answer(self, claim: Claim, status: str) -> dict[str, Any]:
        """A cancel's result where it touched nothing."""
        return {"service": self.service, "status": status, "released": False}

    def _result(self, item: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """What the state machine records for this step: JSON-safe, without table internals."""
        internal = {"pk", "owner", "fingerprint"}
        result = {"service": self.service, **{k: _plain(v) for k, v in item.items() if k not in internal}}
        return result | extra


def _conflicted(error: Any) -> bool:
    """Whether DynamoDB refused the write only because another transaction was in progress on its items: a
    TransactionConflictException, or a cancelled transaction whose reasons are all ``TransactionConflict`` or
    ``None`` (a failed condition is an answer, not a conflict)."""
    if error.response.get("Error", {}).get("Code") == "TransactionConflictException":
        return True
    codes = {reason.get("Code") for reason in error.response.get("CancellationReasons", [])}
    return TRANSACTION_CONFLICT in codes and codes <= {TRANSACTION_CONFLICT, "None"}


def failed_conditions(error: Any) -> list[dict[str, Any] | None]:
    """Per write of a cancelled transaction: the item as it was where its condition failed, else None."""
    deserializer = TypeDeserializer()
    return [
        {key: deserializer.deserialize(value) for key, value in reason.get("Item", {}).items()}
        if reason.get("Code") == "ConditionalCheckFailed"
        else None
        for reason in error.response.get("CancellationReasons", [])
    ]


def _sold_out_message(service: str, holding: dict[str, Any], inventory: dict[str, Any]) -> str:
    if not inventory:
        return f"unknown {service} {holding['resource_id']}"
    return f"{service} {holding['resource_id']} has {inventory['available']} left, {holding['quantity']} requested"


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the state machine needs JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
