"""The choreographed saga's handlers (``booking_saga.choreography``), invoked by the stack's EventBridge rules.

``choreography.reserve`` and ``choreography.cancel`` are the service ``SERVICE`` names (flight, hotel, payment):
its own module's ``SagaService``, the handlers the state machine runs, driven by events. ``choreography.record`` is
the bookings service: the saga log and the booking's end. Configuration: ``EVENT_BUS``, ``RETRIES`` (in-process
retries of a transient failure), the service's ``TABLE_NAME`` and ``BOOKING_CONTRACT``; ``SAGA_LOG_TABLE`` for
``record``.
"""

import importlib
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3

from booking_saga.choreography import BOOKINGS_SOURCE, SOURCE_PREFIX, Bookings, Bus, Participant, SagaLog
from booking_saga.contract import InvalidBooking
from booking_saga.observability import logger, observed
from booking_saga.service import dynamodb_table

# Where a saga event carries the booking id; a failure record, in the request it failed on; saga replay, in its booking.
BOOKING_ID_PATH = "detail.booking_id || detail.requestPayload.detail.booking_id || booking.booking_id"


@cache
def _client(service: str) -> Any:
    """Created once per execution environment and reused while the Lambda stays warm."""
    return boto3.client(service)


@cache
def _bus(source: str) -> Bus:
    return Bus(_client("events"), os.environ["EVENT_BUS"], source)


@cache
def _participant() -> Participant:
    """The service this function is (``SERVICE``): the ``service`` its handler module (flight.py, ...) made."""
    name = os.environ["SERVICE"]
    service = importlib.import_module(name).service
    return Participant(service, lambda: _bus(f"{SOURCE_PREFIX}{name}"), int(os.environ.get("RETRIES", "3")))


@cache
def _bookings() -> Bookings:
    log = SagaLog(dynamodb_table(os.environ["SAGA_LOG_TABLE"]))
    return Bookings(lambda: log, lambda: _bus(BOOKINGS_SOURCE))


def _answered(handle: Callable[[dict[str, Any], object], dict[str, Any]], event: Any, context: object) -> Any:
    """Run ``handle``, and log what it did. An event that is not a saga's (no saga id, no place in it) is
    answered by no one: it is logged and dropped, since retrying it could not mend it."""
    try:
        answer = handle(event, context)
    except InvalidBooking as error:
        logger.warning("ignored an event that is not a saga's", extra={"reason": str(error)})
        return {"outcome": "ignored", "reason": str(error)}
    logger.info("handled", extra={"event": event.get("detail-type"), **answer})
    return answer


@observed(correlation_id_path=BOOKING_ID_PATH)
def reserve(event: dict[str, Any], context: object = None) -> Any:
    return _answered(_participant().reserve, event, context)


@observed(correlation_id_path=BOOKING_ID_PATH)
def cancel(event: dict[str, Any], context: object = None) -> Any:
    return _answered(_participant().cancel, event, context)


@observed(correlation_id_path=BOOKING_ID_PATH)
def record(event: dict[str, Any], context: object = None) -> Any:
    return _answered(_bookings().record, event, context)
