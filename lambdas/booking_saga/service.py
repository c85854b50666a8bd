"""What every saga step's Lambda does around its ledger: validate, honour chaos, reserve or cancel.

Configuration comes from the function's environment: ``TABLE_NAME`` (the
service's own table), ``CHAOS_ENABLED`` (whether a booking's ``chaos``
section may force failures; off in production) and ``CONFIRMS_BOOKING`` (set on
the saga's last reserve only: its success is the booking confirmed).

Every invocation logs one JSON line for its outcome, with the booking id as
correlation id, and counts it: ``ReservationsMade``; ``BookingsConfirmed`` (the
last step's reserve); ``CompensationsRun`` and ``CompensationFailures`` by
``step``, the cancel state's name (a failed attempt counts even when a retry
then succeeds).
"""

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from booking_saga.contract import (
    Booking,
    BusinessError,
    Chaos,
    ChaosFailure,
    InvalidBooking,
    TransientFailure,
    parse_booking,
)
from booking_saga.ledger import Hold, Ledger
from booking_saga.observability import logger, metrics, observed


@cache
def _dynamodb():
    """Created once per execution environment and reused while the Lambda stays warm."""
    return boto3.resource("dynamodb")


class SagaService:
    """One service of the saga: its reserve and cancel handlers share everything but these hooks."""

    def __init__(
        self,
        name: str,
        *,
        hold: Callable[[Booking], Hold] | None = None,
        details: Callable[[Booking], dict] = lambda booking: {},
        admit: Callable[[Booking], None] = lambda booking: None,
    ):
        self.name = name
        self._hold = hold
        self._details = details
        self._admit = admit
        # The Lambda handlers (flight.reserve, flight.cancel, ...): logged, traced and counted.
        self.reserve = observed(self._handle_reserve)
        self.cancel = observed(self._handle_cancel)

    def _handle_reserve(self, event: dict, context: object = None) -> dict:
        """Lambda handler: ``{"step": <state name>, "booking": <execution input>}``."""
        step, document = _unpack(event)
        logger.append_keys(step=step, service=self.name)
        with _reported("reserve"), _naming(step):
            booking = parse_booking(document)
            chaos = _chaos_of(booking)
            self._fail_transiently(booking, chaos, "reserve")
            if chaos.fail_at == self.name:
                raise ChaosFailure(f"forced to fail by chaos.fail_at={self.name}")
            self._admit(booking)
            result = self._reserve(booking)
            if f"{self.name}.reserve" in chaos.duplicate:
                result = self._reserve(booking)
            if chaos.timeout_after_write == self.name:
                _hang_until_timed_out(context)
        logger.info("reserve succeeded", extra={"status": result["status"]})
        metrics.add_metric(name="ReservationsMade", unit=MetricUnit.Count, value=1)
        if os.environ.get("CONFIRMS_BOOKING", "false") == "true":
            metrics.add_metric(name="BookingsConfirmed", unit=MetricUnit.Count, value=1)
        return result

    def _handle_cancel(self, event: dict, context: object = None) -> dict:
        """Lambda handler, same input as reserve; idempotent and a no-op where nothing was reserved."""
        step, document = _unpack(event)
        logger.append_keys(step=step, service=self.name)
        try:
            with _reported("cancel"), _naming(step):
                result = self._cancel(document)
        except Exception:
            _count_compensation("CompensationFailures", step)
            raise
        _count_compensation("CompensationsRun", step)
        metrics.add_metadata(key="released", value=result["released"])
        logger.info("cancel succeeded", extra={"status": result["status"], "released": result["released"]})
        return result

    def _cancel(self, document: object) -> dict:
        try:
            booking = parse_booking(document)
        except InvalidBooking as invalid:
            # reserve validates the same document, so it cannot have written anything
            return {"service": self.name, "status": "NOTHING_TO_CANCEL", "released": False, "reason": str(invalid)}
        chaos = _chaos_of(booking)
        self._fail_transiently(booking, chaos, "cancel")
        if chaos.fail_cancel == self.name:
            raise ChaosFailure(f"forced to fail by chaos.fail_cancel={self.name}")
        ledger = self._ledger()
        result = ledger.cancel(booking.booking_id)
        if f"{self.name}.cancel" in chaos.duplicate:
            result = ledger.cancel(booking.booking_id)
        return result

    def _reserve(self, booking: Booking) -> dict:
        return self._ledger().reserve(
            booking.booking_id,
            {"customer_id": booking.customer_id, **self._details(booking)},
            self._hold(booking) if self._hold else None,
        )

    def _fail_transiently(self, booking: Booking, chaos: Chaos, action: str) -> None:
        """chaos.transient: fail the first N calls, counted by conditional puts so retries on any
        Lambda instance see the same count (and the function needs no permission beyond PutItem)."""
        failures = chaos.transient_failures(f"{self.name}.{action}")
        table = self._ledger().table
        for attempt in range(1, failures + 1):
            try:
                table.put_item(
                    Item={"pk": f"chaos#{booking.booking_id}#{action}#{attempt}"},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except table.meta.client.exceptions.ConditionalCheckFailedException:
                continue  # this failure already happened
            raise TransientFailure(f"forced transient failure {attempt} of {failures} by chaos.transient")

    def _ledger(self) -> Ledger:
        return Ledger(_dynamodb().Table(os.environ["TABLE_NAME"]), self.name)


def _unpack(event: object) -> tuple[str, object]:
    if not isinstance(event, dict):
        return "", None
    return str(event.get("step", ""))[:80], event.get("booking")


@contextmanager
def _naming(step: str):
    """Prefix business errors with the state that raised them, so the saga's cause names the failed step."""
    try:
        yield
    except BusinessError as error:
        if not step:
            raise
        raise type(error)(f"{step}: {error}") from None


@contextmanager
def _reported(action: str):
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


def _count_compensation(metric: str, step: str) -> None:
    """Count a compensation by its cancel state. Powertools puts a dimension on every metric of the
    invocation's one flush, and a cancel counts nothing else."""
    metrics.add_dimension(name="step", value=step.strip() or "unnamed")
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


def _chaos_of(booking: Booking) -> Chaos:
    """The booking's chaos section where the stack enables chaos; none at all elsewhere."""
    return booking.chaos if os.environ.get("CHAOS_ENABLED", "false") == "true" else Chaos()


def _hang_until_timed_out(context: object) -> None:
    """Lambda stops a handler at its timeout; called without the runtime, end the same way."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 0
    time.sleep(remaining + 1)
    raise TimeoutError("the handler outlived its timeout")
