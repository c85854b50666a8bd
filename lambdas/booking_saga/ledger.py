"""The reservation ledger every service shares: idempotent reserve, idempotent cancel.

Each service owns one table keyed by ``pk``. ``booking#<id>`` items record a
reservation (``RESERVED``) or its tombstone (``CANCELLED``); ``inventory#<id>``
items hold what is left to sell (``available``). Reserving writes the record and
takes the capacity in one conditional transaction, so concurrent sagas cannot
oversell; cancelling flips the record and gives the capacity back the same way.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from booking_saga.contract import BookingCancelled, SoldOut, TransientFailure

RESERVED = "RESERVED"
CANCELLED = "CANCELLED"
_CANCEL_ATTEMPTS = 3


@dataclass(frozen=True)
class Hold:
    """Capacity a reservation takes: seats on a flight, rooms in a hotel."""

    resource_id: str
    quantity: int


def booking_key(booking_id: str) -> dict[str, str]:
    return {"pk": f"booking#{booking_id}"}


def inventory_key(resource_id: str) -> dict[str, str]:
    return {"pk": f"inventory#{resource_id}"}


class Ledger:
    """One service's reservations, in its own DynamoDB table (a boto3 ``Table``)."""

    def __init__(self, table: Any, service: str):
        self.table = table
        self.service = service
        self._client = table.meta.client

    def stock(self, resource_id: str, quantity: int) -> None:
        """Set what is left to sell of a flight or hotel (loading a catalog)."""
        self.table.put_item(
            Item={**inventory_key(resource_id), "resource_id": resource_id, "capacity": quantity, "available": quantity}
        )

    def record(self, booking_id: str) -> dict | None:
        """The booking's reservation or tombstone, as last written (a strongly consistent read)."""
        return self.table.get_item(Key=booking_key(booking_id), ConsistentRead=True).get("Item")

    def available(self, resource_id: str) -> int | None:
        """What is left to sell of a flight or hotel; None for one never stocked."""
        item = self.table.get_item(Key=inventory_key(resource_id), ConsistentRead=True).get("Item")
        return None if item is None else int(item["available"])

    def reserve(self, booking_id: str, details: dict, hold: Hold | None = None) -> dict:
        """Reserve once: a replay returns the first result, a reserve after a cancel is refused."""
        record = {
            **booking_key(booking_id),
            "booking_id": booking_id,
            "status": RESERVED,
            "reserved_at": _now(),
            **details,
        }
        if hold:
            record |= {"resource_id": hold.resource_id, "quantity": hold.quantity}
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
        if hold:
            writes.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": inventory_key(hold.resource_id),
                        "UpdateExpression": "SET available = available - :quantity",
                        "ConditionExpression": "available >= :quantity",
                        "ExpressionAttributeValues": {":quantity": hold.quantity},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        try:
            self._client.transact_write_items(TransactItems=writes)
        except self._client.exceptions.TransactionCanceledException as error:
            existing, inventory = [*_failed_conditions(error), None, None][:2]
            if existing is not None:
                if existing["status"] == CANCELLED:
                    raise BookingCancelled(f"{self.service} booking {booking_id} was already cancelled") from None
                return self._result(existing)
            if hold and inventory is not None:
                raise SoldOut(_sold_out_message(self.service, hold, inventory)) from None
            raise TransientFailure(f"{self.service} reservation for {booking_id} conflicted; retry") from None
        return self._result(record)

    def cancel(self, booking_id: str) -> dict:
        """Undo a reservation, or leave a tombstone where there is none; safe to repeat."""
        for _ in range(_CANCEL_ATTEMPTS):
            existing = self.record(booking_id)
            try:
                if existing is None:
                    return self._leave_tombstone(booking_id)
                if existing["status"] == CANCELLED:
                    return self._result(existing, released=False)
                return self._release(existing)
            except (
                self._client.exceptions.ConditionalCheckFailedException,
                self._client.exceptions.TransactionCanceledException,
            ):
                continue  # a reserve or cancel of the same booking landed in between: look again
        raise TransientFailure(f"{self.service} cancel of {booking_id} kept conflicting; retry")

    def _leave_tombstone(self, booking_id: str) -> dict:
        tombstone = {**booking_key(booking_id), "booking_id": booking_id, "status": CANCELLED, "cancelled_at": _now()}
        self.table.put_item(Item=tombstone, ConditionExpression="attribute_not_exists(pk)")
        return self._result(tombstone, released=False)

    def _release(self, reservation: dict) -> dict:
        cancelled_at = _now()
        writes = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": booking_key(reservation["booking_id"]),
                    "UpdateExpression": "SET #status = :cancelled, cancelled_at = :now",
                    "ConditionExpression": "#status = :reserved",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":cancelled": CANCELLED, ":reserved": RESERVED, ":now": cancelled_at},
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
        self._client.transact_write_items(TransactItems=writes)
        return self._result({**reservation, "status": CANCELLED, "cancelled_at": cancelled_at}, released=True)

    def _result(self, item: dict, **extra: Any) -> dict:
        """What the state machine records for this step: JSON-safe, without table internals."""
        result = {"service": self.service, **{k: _plain(v) for k, v in item.items() if k != "pk"}}
        return result | extra


def _failed_conditions(error: Any) -> list[dict | None]:
    """Per write of a cancelled transaction: the item as it was where its condition failed, else None."""
    deserializer = TypeDeserializer()
    return [
        {key: deserializer.deserialize(value) for key, value in reason.get("Item", {}).items()}
        if reason.get("Code") == "ConditionalCheckFailed"
        else None
        for reason in error.response.get("CancellationReasons", [])
    ]


def _sold_out_message(service: str, hold: Hold, inventory: dict) -> str:
    if not inventory:
        return f"unknown {service} {hold.resource_id}"
    return f"{service} {hold.resource_id} has {inventory['available']} left, {hold.quantity} requested"


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the state machine needs JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
