"""What every saga step's Lambda does around its ledger: validate, honour chaos, reserve or cancel.

Configuration comes from the function's environment: ``TABLE_NAME`` (the
service's own table) and ``CHAOS_ENABLED`` (whether a booking's ``chaos``
section may force failures; off in production).
"""

import os
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache

import boto3

from booking import Booking, BusinessError, ChaosFailure, InvalidBooking, parse_booking
from reservations import Hold, Ledger


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

    def reserve(self, event: dict, context: object = None) -> dict:
        """Lambda handler: ``{"step": <state name>, "booking": <execution input>}``."""
        step, document = _unpack(event)
        with _naming(step):
            booking = parse_booking(document)
            if _chaos_enabled() and booking.chaos.fail_at == self.name:
                raise ChaosFailure(f"forced to fail by chaos.fail_at={self.name}")
            self._admit(booking)
            return self._ledger().reserve(
                booking.booking_id,
                {"customer_id": booking.customer_id, **self._details(booking)},
                self._hold(booking) if self._hold else None,
            )

    def cancel(self, event: dict, context: object = None) -> dict:
        """Lambda handler, same input as reserve; idempotent and a no-op where nothing was reserved."""
        step, document = _unpack(event)
        with _naming(step):
            try:
                booking = parse_booking(document)
            except InvalidBooking as invalid:
                # reserve validates the same document, so it cannot have written anything
                return {"service": self.name, "status": "NOTHING_TO_CANCEL", "released": False, "reason": str(invalid)}
            if _chaos_enabled() and booking.chaos.fail_cancel == self.name:
                raise ChaosFailure(f"forced to fail by chaos.fail_cancel={self.name}")
            return self._ledger().cancel(booking.booking_id)

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


def _chaos_enabled() -> bool:
    return os.environ.get("CHAOS_ENABLED", "false") == "true"
