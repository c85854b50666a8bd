"""The atomic design's one function (``booking_saga.atomic``): the whole trip in a single DynamoDB transaction.

Each service's rules are its own module's (``payment``'s card limit, say), applied to the tables the stack names:
``<SERVICE>_TABLE`` (``FLIGHT_TABLE``, ...), ``BOOKINGS_TABLE``; also ``BOOKING_CONTRACT`` and ``RETRIES`` (in-process
retries of a transient failure).
"""

import importlib
import os
from collections.abc import Callable
from functools import cache
from typing import Any

from booking_saga.atomic import AtomicBooking, invalid, table_variable
from booking_saga.contract import InvalidBooking
from booking_saga.observability import observed
from booking_saga.service import SagaService, dynamodb_table
from booking_saga.services import SERVICES


def _table(variable: str) -> Callable[[], Any]:
    return lambda: dynamodb_table(os.environ[variable])


@cache
def _booking() -> AtomicBooking:
    services = [
        SagaService(
            spec, admit=importlib.import_module(spec.name).service.admit, table=_table(table_variable(spec.name))
        )
        for spec in SERVICES
    ]
    return AtomicBooking(services, _table("BOOKINGS_TABLE"), int(os.environ.get("RETRIES", "3")))


@observed(correlation_id_path="booking.booking_id")
def book(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """``{"instance": ..., "booking": ...}``: the outcome, or for an invocation naming no valid booking id or
    instance, a refusal that records nothing."""
    try:
        return _booking().book(event, context)
    except InvalidBooking as error:
        return invalid(error)
