"""What every saga step's Lambda does around its ledger: validate, honour chaos, reserve or cancel.

Configuration comes from the function's environment: ``TABLE_NAME`` (the
service's own table), ``BOOKING_CONTRACT`` (what the stack accepts: currencies,
payment limits, whether a booking's ``chaos`` section may force failures) and
``CONFIRMS_BOOKING`` (set on the saga's last reserve only: its success is the
booking confirmed).

The state machine calls each handler with ``{"step": <state name>, "execution":
<execution id>, "booking": <execution input>}``: the execution owns what its
reserves take, and its cancels give back only that.

Every invocation logs one JSON line for its outcome, with the booking id as
correlation id, and counts it: ``ReservationsMade`` (or ``ReservationsReplayed``
for a reserve that found its own earlier write); ``BookingsConfirmed`` (the last
step's reserve, when it made the reservation); ``CompensationsRun`` and
``CompensationFailures`` by ``step``, the cancel state's name (a failed attempt
counts even when a retry then succeeds). ``TransactionConflictRetries`` counts the writes made again
because DynamoDB refused them while another transaction was in progress on the same item (``ledger.ConflictRetry``).
"""

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from booking_saga.contract import (
    Booking,
    BusinessError,
    Chaos,
    ChaosFailure,
    Contract,
    InvalidBooking,
    TransientFailure,
    fingerprint,
    parse_booking_id,
    parse_owner,
)
from booking_saga.ledger import NOTHING_TO_CANCEL, Claim, Ledger
from booking_saga.observability import logger, metrics, observed
from booking_saga.services import Service

OVERSIZED_BYTES = 300 * 1024  # more than the 256 KiB a state's input or output may hold
# In-process retries of a TransientFailure (``retrying``): pauses from PAUSE_SECONDS doubling up to MAX_PAUSE_SECONDS.
PAUSE_SECONDS = 0.05
MAX_PAUSE_SECONDS = 0.2


@cache
def _dynamodb() -> Any:
    """Created once per execution environment and reused while the Lambda stays warm."""
    return boto3.resource("dynamodb")


@cache
def dynamodb_table(name: str) -> Any:
    """A table's resource, made once per execution environment and reused while the Lambda stays warm: boto3
    builds a class for each resource it makes, about a millisecond of every invocation otherwise."""
    return _dynamodb().Table(name)


def table_from_environment() -> Any:
    """The service's own table, as the stack names it to the function (``TABLE_NAME``)."""
    return dynamodb_table(os.environ["TABLE_NAME"])


class SagaService:
    """One service of the saga, from its entry in ``SERVICES``; ``admit`` may refuse a valid booking
    before anything is written (the payment service declines charges above the currency's limit).
    ``table`` finds the service's table; tests give it another one."""

    def __init__(
        self,
        spec: Service,
        *,
        admit: Callable[[Booking, Contract], None] = lambda booking, contract: None,
        table: Callable[[], Any] = table_from_environment,
    ):
        self.spec = spec
        self.name = spec.name
        self.table = table
        self.admit = admit
        # The Lambda handlers (flight.reserve, flight.cancel, ...): logged, traced and counted.
        self.reserve = observed(self.handle_reserve)
        self.cancel = observed(self.handle_cancel)

    def handle_reserve(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        """Reserve what the booking asks of this service, for its execution (or, choreographed, its saga)."""
        step, execution, document = _unpack(event)
        logger.append_keys(step=step, service=self.name)
        with _reported("reserve"), _naming(step):
            contract = Contract.from_environment()
            booking = contract.parse(document)
            claim = Claim(booking.booking_id, parse_owner(execution), booking.fingerprint)
            chaos = booking.chaos
            self._fail_transiently(booking.booking_id, chaos, "reserve")
            if chaos.fail_at == self.name:
                raise ChaosFailure(f"forced to fail by chaos.fail_at={self.name}")
            self.admit(booking, contract)
            holding = {"customer_id": booking.customer_id, **self.spec.holding(booking.section(self.name))}
            reserved = self._ledger().reserve(claim, holding)
            self._count_reservation(made=not reserved.replayed)
            result = self._after_write(chaos, claim, holding, reserved.result, context)
        logger.info("reserve succeeded", extra={"status": reserved.result["status"], "replayed": reserved.replayed})
        return result

    def _after_write(
        self, chaos: Chaos, claim: Claim, holding: dict[str, Any], result: dict[str, Any], context: object
    ) -> dict[str, Any]:
        """The chaos that strikes once the reservation is written: a redelivery, a hang, an oversized answer."""
        if f"{self.name}.reserve" in chaos.duplicate:
            self._ledger().reserve(claim, holding)  # a redelivery: finds its own write, takes nothing more
        if chaos.timeout_after_write == self.name:
            _hang_until_timed_out(context)
        if chaos.oversized_result == self.name:
            return result | {"chaos_padding": "x" * OVERSIZED_BYTES}
        return result

    def handle_cancel(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        """Same input as reserve; idempotent, and a no-op where its execution (or saga) holds nothing."""
        step, execution, document = _unpack(event)
        logger.append_keys(step=step, service=self.name)
        try:
            with _reported("cancel"), _naming(step):
                result = self._cancel(execution, document)
        except Exception:
            _count_compensation("CompensationFailures", step)
            raise
        _count_compensation("CompensationsRun", step)
        metrics.add_metadata(key="released", value=result["released"])
        logger.info("cancel succeeded", extra={"status": result["status"], "released": result["released"]})
        return result

    def _cancel(self, execution: object, document: object) -> dict[str, Any]:
        """What is given back is what the record says was taken: the booking is not re-validated for it, so
        a reservation made under older rules is still released. An invalid booking only decides whether a
        tombstone is needed where nothing is recorded (no reserve accepts it, so none can come late)."""
        try:
            chaos, invalid = Contract.from_environment().parse(document).chaos, None
        except InvalidBooking as error:
            chaos, invalid = Chaos(), error
        try:
            booking_id = parse_booking_id(document.get("booking_id") if isinstance(document, dict) else None)
        except InvalidBooking:  # then the booking is invalid too: no reserve wrote anything under it
            return {"service": self.name, "status": NOTHING_TO_CANCEL, "released": False, "reason": str(invalid)}
        assert isinstance(document, dict)  # its booking id was read from it
        claim = Claim(booking_id, parse_owner(execution), fingerprint(document))
        self._fail_transiently(booking_id, chaos, "cancel")
        if chaos.fail_cancel == self.name:
            raise ChaosFailure(f"forced to fail by chaos.fail_cancel={self.name}")
        ledger = self._ledger()
        result = ledger.cancel(claim, tombstone=invalid is None)
        if f"{self.name}.cancel" in chaos.duplicate:
            result = ledger.cancel(claim, tombstone=invalid is None)
        if invalid is not None and result["status"] == NOTHING_TO_CANCEL:
            result["reason"] = str(invalid)
        return result

    def _count_reservation(self, made: bool) -> None:
        metrics.add_metric(name="ReservationsMade" if made else "ReservationsReplayed", unit=MetricUnit.Count, value=1)
        if made and os.environ.get("CONFIRMS_BOOKING", "false") == "true":
            metrics.add_metric(name="BookingsConfirmed", unit=MetricUnit.Count, value=1)

    def _fail_transiently(self, booking_id: str, chaos: Chaos, action: str) -> None:
        fail_transiently(self.table(), f"{self.name}.{action}", booking_id, chaos)

    def _ledger(self) -> Ledger:
        return Ledger(self.table(), self.name, on_retry=_count_conflict_retry)


def fail_transiently(table: Any, function: str, booking_id: str, chaos: Chaos) -> None:
    """chaos.transient: the first N calls of ``function`` (``hotel.cancel``) fail, counted by conditional puts in the
    service's own table so retries on any Lambda instance see the same count (needing no permission beyond PutItem)."""
    failures = chaos.transient_failures(function)
    action = function.rpartition(".")[2]
    for attempt in range(1, failures + 1):
        try:
            table.put_item(
                Item={"pk": f"chaos#{booking_id}#{action}#{attempt}"},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except table.meta.client.exceptions.ConditionalCheckFailedException:
            continue  # this failure already happened
        raise TransientFailure(f"forced transient failure {attempt} of {failures} by chaos.transient")


def retrying(call: Callable[[], Any], retries: int) -> Any:
    """``call``, tried again after a TransientFailure up to ``retries`` times with short pauses (half of each random):
    where no state machine retries a step (the other designs), a write conflict still passes in milliseconds, well
    inside the function's timeout; Lambda's own retries of an asynchronous event come minutes apart."""
    attempt = 0
    while True:
        try:
            return call()
        except TransientFailure:
            if attempt == retries:
                raise
        pause = min(PAUSE_SECONDS * 2**attempt, MAX_PAUSE_SECONDS)
        time.sleep(pause / 2 + random.uniform(0, pause / 2))
        attempt += 1


def _unpack(event: object) -> tuple[str, object, object]:
    """The state's name, the execution's id and the booking, as the state machine sends them."""
    if not isinstance(event, dict):
        return "", None, None
    return str(event.get("step", ""))[:80], event.get("execution"), event.get("booking")


@contextmanager
def _naming(step: str) -> Iterator[None]:
    """Prefix business errors with the state that raised them, so the saga's cause names the failed step."""
    try:
        yield
    except BusinessError as error:
        if not step:
            raise
        raise type(error)(f"{step}: {error}") from None


@contextmanager
def _reported(action: str) -> Iterator[None]:
    """Log a failed invocation: WARNING for what the saga expects (business errors, chaos, transient
    failures the state machine retries), ERROR with the traceback for anything else."""
    try:
        yield
    except (BusinessError, TransientFailure) as error:
        logger.warning(f"{action} failed", extra={"error": type(error).__name__, "reason": str(error)})
        raise
    except Exception:
        logger.exception(f"{action} failed")
        raise


def _count_conflict_retry() -> None:
    metrics.add_metric(name="TransactionConflictRetries", unit=MetricUnit.Count, value=1)


def _count_compensation(metric: str, step: str) -> None:
    """Count a compensation by its cancel state. Powertools puts a dimension on every metric of the
    invocation's one flush, and a cancel counts nothing else (but its conflict retries, by step too)."""
    metrics.add_dimension(name="step", value=step.strip() or "unnamed")
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


def _hang_until_timed_out(context: object) -> None:
    """Lambda stops a handler at its timeout; called without the runtime, end the same way."""
    remaining = getattr(context, "get_remaining_time_in_millis", lambda: 0)() / 1000
    time.sleep(remaining + 1)
    raise TimeoutError("the handler outlived its timeout")
