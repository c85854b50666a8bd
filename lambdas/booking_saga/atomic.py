"""The atomic design: seat, room and charge in one DynamoDB transaction. Not a saga: there is nothing to compensate.

One ``TransactWriteItems`` writes every service's reservation record and takes its capacity (the very items each
service's ledger writes in the saga), and records the booking's outcome in the bookings table: all of it, or none.
That holds only while one account and region own every table, the booking fits in 100 items, and every step is a
DynamoDB write; real services (separate owners, a payment provider's API) can have none of these, which is why
sagas exist (DESIGNS.md).

The same contract, the same errors, in the saga's order: the transaction's conditions are read service by service
(``SoldOut``, ``BookingConflict``), and a service that refuses before writing (chaos ``fail_at``, then its
``admit``: ``PaymentDeclined``) adds a condition that never holds in its place, so an earlier service's
``SoldOut`` is still the one reported, as the saga would; ``InvalidBooking`` comes first. Chaos ``transient``
fails a service's part N times first (retried here); ``duplicate`` writes again (a redelivery, which finds its own
writes); ``timeout_after_write`` hangs once committed, so the caller sees a timeout of a booking that is confirmed.

The booking must have been accepted for this instance (``BookingRegistry.accept``): its record in the bookings
table names the instance, and the transaction's last item checks it and records the outcome, so a booking id is
used once and its outcome is decided once. A failed booking's outcome is recorded after the cancelled transaction.
"""

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from booking_saga.contract import (
    Booking,
    BookingConflict,
    BusinessError,
    ChaosFailure,
    Contract,
    InvalidBooking,
    TransientFailure,
    parse_booking_id,
    parse_owner,
)
from booking_saga.executions import ROLLED_BACK_STATUS
from booking_saga.ledger import Claim, ConflictRetry, Ledger, failed_conditions
from booking_saga.service import SagaService, fail_transiently, retrying

CONFIRMED, ROLLED_BACK = "CONFIRMED", ROLLED_BACK_STATUS
STEP = "BookTrip"  # the one step, as status and history name it


def table_variable(service: str) -> str:
    """The environment variable naming a service's table to the function: ``FLIGHT_TABLE``."""
    return f"{service.upper()}_TABLE"


@dataclass(frozen=True)
class _Part:
    """Where a transaction item came from: a service's record, its inventory, its refusal, or the outcome."""

    service: SagaService | None
    kind: str  # "record", "inventory", "refused" or "outcome"
    refusal: BusinessError | None = None  # what a "refused" part's service raised


def _refusal_of(service: SagaService, booking: Booking) -> BusinessError | None:
    """What the service's reserve would refuse before writing, as the saga's step does: chaos.fail_at, then its
    ``admit`` (the payment's card limit)."""
    if booking.chaos.fail_at == service.name:
        return ChaosFailure(f"{service.spec.reserve_state}: forced to fail by chaos.fail_at={service.name}")
    try:
        service.admit(booking, Contract.from_environment())
    except BusinessError as error:
        return error
    return None


class AtomicBooking:
    """Books a trip in one transaction over ``services``' tables and ``bookings`` (the bookings table), retrying a
    service's transient failures ``retries`` times."""

    def __init__(self, services: list[SagaService], bookings: Callable[[], Any], retries: int):
        self.services = services
        self.bookings = bookings
        self.retries = retries

    def book(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        """Handler: ``{"instance": <saga instance id>, "booking": <the booking>}``; answers with the outcome."""
        if not isinstance(event, dict):
            raise InvalidBooking("the invocation must be an object naming its instance and booking")
        instance = parse_owner(event.get("instance"))
        document = event.get("booking")
        booking_id = parse_booking_id(document.get("booking_id") if isinstance(document, dict) else None)
        record = self._record(booking_id)
        if record is not None and "outcome" in record and record.get("execution_arn") == instance:
            return _answer(booking_id, instance, record, replayed=True)
        try:
            booking = Contract.from_environment().parse(document)
            retrying(partial(self._commit, booking, instance), self.retries)
        except BusinessError as error:
            return self._roll_back(booking_id, instance, error)
        chaos = booking.chaos
        if any(f"{service.name}.reserve" in chaos.duplicate for service in self.services):
            self._commit(booking, instance)  # a redelivery: it finds its own writes and changes nothing
        if chaos.timeout_after_write:
            _hang_until_timed_out(context)
        return {"booking_id": booking_id, "instance": instance, "outcome": CONFIRMED, "replayed": False}

    def _commit(self, booking: Booking, instance: str) -> None:
        """Every service's part and the outcome in one transaction; ``BusinessError`` naming the first part (in the
        saga's order) whose condition failed, unless it was all written already for this instance."""
        claim = Claim(booking.booking_id, instance, booking.fingerprint)
        writes: list[dict[str, Any]] = []
        parts: list[_Part] = []
        holdings = {}
        for service in self.services:
            retrying(
                partial(
                    fail_transiently, service.table(), f"{service.name}.reserve", booking.booking_id, booking.chaos
                ),
                self.retries,
            )
            refusal = _refusal_of(service, booking)
            if refusal is not None:  # the transaction must fail here, unless an earlier part fails first
                writes.append(_never_holds(service, booking.booking_id))
                parts.append(_Part(service, "refused", refusal))
                break
            holding = {"customer_id": booking.customer_id, **service.spec.holding(booking.section(service.name))}
            holdings[service.name] = holding
            _, items = Ledger(service.table(), service.name).reservation(claim, holding)
            writes += items
            parts += [_Part(service, "record"), _Part(service, "inventory")][: len(items)]
        writes.append(self._outcome_write(booking.booking_id, instance))
        parts.append(_Part(None, "outcome"))
        client = self.bookings().meta.client
        try:  # retried while it only meets other transactions in progress, as the saga's ledger retries its own
            ConflictRetry().run(
                client, lambda: client.transact_write_items(TransactItems=writes), f"booking {booking.booking_id}"
            )
        except client.exceptions.TransactionCanceledException as error:
            codes = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            self._refusal(claim, holdings, parts, failed_conditions(error), codes)

    def _refusal(
        self,
        claim: Claim,
        holdings: dict[str, dict[str, Any]],
        parts: list[_Part],
        failed: list[dict[str, Any] | None],
        codes: list[str | None],
    ) -> None:
        """Why the transaction was cancelled, as the saga would have told it: the first service whose part failed.
        Returns (a replay) only if every service's record is this instance's own."""
        replayed = set()
        for service in self.services:
            mine = [index for index, part in enumerate(parts) if part.service is service]
            reasons = {parts[index].kind: (failed[index] if index < len(failed) else None) for index in mine}
            kinds = {parts[index].kind for index in mine if codes[index : index + 1] == ["ConditionalCheckFailed"]}
            if kinds & {"record", "inventory"}:
                ledger = Ledger(service.table(), service.name)
                ledger.refused(claim, holdings[service.name], [reasons.get("record"), reasons.get("inventory")])
                replayed.add(service.name)  # refused() returned: the record is this instance's own
            refusal = next((parts[index].refusal for index in mine if parts[index].kind == "refused"), None)
            if refusal is not None and "refused" in kinds:
                raise refusal
        if "TransactionConflict" in codes:
            raise TransientFailure(f"the transaction for {claim.booking_id} met another writer; retry")
        if replayed != {service.name for service in self.services}:
            raise BookingConflict(f"booking {claim.booking_id} was not accepted for this saga instance")

    def _outcome_write(self, booking_id: str, instance: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.bookings().name,
                "Key": {"pk": f"booking#{booking_id}"},
                "UpdateExpression": "SET outcome = :confirmed, decided_at = :now",
                # accepted for this very instance, and not decided yet
                "ConditionExpression": "execution_arn = :instance AND attribute_not_exists(outcome)",
                "ExpressionAttributeValues": {":confirmed": CONFIRMED, ":now": _now(), ":instance": instance},
            }
        }

    def _roll_back(self, booking_id: str, instance: str, error: BusinessError) -> dict[str, Any]:
        """Record that the booking was rolled back, and why (unless it was not accepted for this instance)."""
        fields = {"outcome": ROLLED_BACK, "error": type(error).__name__, "cause": str(error), "decided_at": _now()}
        table = self.bookings()
        with suppress(table.meta.client.exceptions.ConditionalCheckFailedException):
            # fails for another instance's booking id, or one decided already: its record stands
            table.update_item(
                Key={"pk": f"booking#{booking_id}"},
                UpdateExpression="SET outcome = :outcome, #error = :error, cause = :cause, decided_at = :decided_at",
                ConditionExpression="execution_arn = :instance AND attribute_not_exists(outcome)",
                ExpressionAttributeNames={"#error": "error"},
                ExpressionAttributeValues={f":{key}": value for key, value in fields.items()} | {":instance": instance},
            )
        return {"booking_id": booking_id, "instance": instance, **fields, "replayed": False}

    def _record(self, booking_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            self.bookings().get_item(Key={"pk": f"booking#{booking_id}"}, ConsistentRead=True).get("Item")
        )
        return item


def _never_holds(service: SagaService, booking_id: str) -> dict[str, Any]:
    """A service's refusal: a condition on its part that cannot hold, so DynamoDB cancels the transaction, and an
    earlier service's part that fails too is still seen first."""
    return {
        "ConditionCheck": {
            "TableName": service.table().name,
            "Key": {"pk": f"chaos#{booking_id}#fail_at"},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }


def _answer(booking_id: str, instance: str, record: dict[str, Any], replayed: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {key: record[key] for key in ("outcome", "error", "cause", "decided_at") if key in record}
    return {"booking_id": booking_id, "instance": instance, **fields, "replayed": replayed}


def _hang_until_timed_out(context: object) -> None:
    """Lambda stops a handler at its timeout; called without the runtime, end the same way."""
    remaining = getattr(context, "get_remaining_time_in_millis", lambda: 0)() / 1000
    time.sleep(remaining + 1)
    raise TimeoutError("the handler outlived its timeout")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def status(record: dict[str, Any] | None) -> tuple[str, str | None, str | None]:
    """A booking's status, error and cause from its record in the bookings table, in the terms ``verdict`` reads:
    ``SUCCEEDED``, ``ROLLED_BACK``, or ``RUNNING`` while its transaction has not been decided."""
    if record is None or "outcome" not in record:
        return "RUNNING", None, None
    if record["outcome"] == CONFIRMED:
        return "SUCCEEDED", None, None
    return ROLLED_BACK, record.get("error"), record.get("cause")


def invalid(error: InvalidBooking) -> dict[str, Any]:
    """The answer to an invocation that names no valid booking id or instance: nothing can be recorded for it."""
    return {"outcome": ROLLED_BACK, "error": "InvalidBooking", "cause": str(error), "replayed": False}
