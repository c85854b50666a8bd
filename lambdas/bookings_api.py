"""The booking HTTP API behind API Gateway (Lambda proxy integration).

``POST /bookings`` validates the booking against the same contract every saga
step checks, records it in the bookings table and starts the saga, named by the
booking id: ``202``. The same booking again starts nothing and answers ``200``
with the booking as it is now (two identical requests racing get one ``202``);
the same id with other details is a conflict (``409``), forever: the bookings
table keeps every accepted id. ``GET /bookings/{booking_id}`` answers with the
verdict, the step reached and, on failure, the error and the compensations that
ran. Configuration: ``STATE_MACHINE_ARN``, ``BOOKINGS_TABLE`` and
``BOOKING_CONTRACT``.

Powertools' idempotency utility does not fit these rules: it replays the first
response (a ``202`` again, not the booking as it is now), answers a request
racing an in-progress one with an error rather than the booking, and its records
expire by design, after which a booking id could be used again.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3

from booking_saga.contract import MAX_BOOKING_BYTES, Contract, InvalidBooking, parse_booking_id
from booking_saga.executions import (
    BookingRegistry,
    DuplicateBooking,
    Outcome,
    UnknownBooking,
    start_booking,
    status_of,
)
from booking_saga.observability import logger, observed
from booking_saga.service import dynamodb_table


@cache
def _stepfunctions_client() -> Any:
    """Created once per execution environment and reused while the Lambda stays warm."""
    return boto3.client("stepfunctions")


@cache
def _bookings_table() -> BookingRegistry:
    return BookingRegistry(dynamodb_table(os.environ["BOOKINGS_TABLE"]))


@dataclass
class Dependencies:
    """What the handler talks to, each made on first use; tests give it others."""

    stepfunctions: Callable[[], Any] = _stepfunctions_client
    registry: Callable[[], BookingRegistry] = _bookings_table


dependencies = Dependencies()


@observed(correlation_id_path=None)
def handle(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda handler for both routes; API Gateway has already checked the caller and the body's shape."""
    route = (event.get("httpMethod"), event.get("resource"))
    if route == ("POST", "/bookings"):
        return _create(event.get("body"))
    if route == ("GET", "/bookings/{booking_id}"):
        return _read((event.get("pathParameters") or {}).get("booking_id", ""))
    return _response(404, {"message": f"no route {route[0]} {route[1]}"})


def _create(body: object) -> dict[str, Any]:
    if not isinstance(body, str) or len(body.encode()) > MAX_BOOKING_BYTES:
        return _response(400, {"message": f"the body must be a JSON booking of at most {MAX_BOOKING_BYTES} bytes"})
    try:
        document = json.loads(body)
    except ValueError:
        return _response(400, {"message": "the body is not valid JSON"})
    try:
        booking_id = Contract.from_environment().parse(document).booking_id
    except InvalidBooking as error:
        return _response(400, {"message": str(error)})
    logger.set_correlation_id(booking_id)
    state_machine = os.environ["STATE_MACHINE_ARN"]
    try:
        started = start_booking(dependencies.stepfunctions(), dependencies.registry(), state_machine, document)
    except DuplicateBooking as error:
        logger.warning("booking id reused for a different booking")
        return _response(409, {"message": str(error)})
    booking = _status(booking_id)
    if started.accepted:
        logger.info("booking started")
        return _booking(202, booking)
    logger.info("repeated booking request", extra={"verdict": booking.verdict})
    return _booking(200, booking)


def _read(booking_id: str) -> dict[str, Any]:
    try:
        parse_booking_id(booking_id)
    except InvalidBooking as error:
        return _response(400, {"message": str(error)})
    logger.set_correlation_id(booking_id)
    try:
        booking = status_of(
            dependencies.stepfunctions(), dependencies.registry(), os.environ["STATE_MACHINE_ARN"], booking_id
        )
    except UnknownBooking as error:
        return _response(404, {"message": str(error)})
    logger.info("booking read", extra={"verdict": booking.verdict})
    return _booking(200, booking)


def _status(booking_id: str) -> Outcome:
    return status_of(dependencies.stepfunctions(), dependencies.registry(), os.environ["STATE_MACHINE_ARN"], booking_id)


def _booking(status_code: int, outcome: Outcome) -> dict[str, Any]:
    return _response(status_code, outcome.to_json(), location=f"/bookings/{outcome.booking_id}")


def _response(status_code: int, body: dict[str, Any], location: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if location:
        headers["Location"] = location
    return {"statusCode": status_code, "headers": headers, "body": json.dumps(body)}
