"""The booking HTTP API behind API Gateway (Lambda proxy integration).

``POST /bookings`` validates the booking against the same contract every saga
step checks and starts the saga, named by the booking id. A repeated POST of the
same booking starts nothing and answers with the booking as it is now; the same id
with a different booking is a conflict. ``GET /bookings/{booking_id}`` answers
with the status, the step reached and, on failure, the error and the
compensations that ran. Configuration: ``STATE_MACHINE_ARN``.
"""

import json
import os
from functools import cache

import boto3

from booking_saga.contract import InvalidBooking, parse_booking, parse_booking_id
from booking_saga.executions import DuplicateBooking, Outcome, UnknownBooking, outcome_of, start_booking
from booking_saga.observability import logger, observed

MAX_BODY_BYTES = 16 * 1024  # a booking is a few hundred bytes; Step Functions takes at most 256 KB of input


@cache
def _stepfunctions():
    """Created once per execution environment and reused while the Lambda stays warm."""
    return boto3.client("stepfunctions")


@observed
def handle(event: dict, context: object = None) -> dict:
    """Lambda handler for both routes; API Gateway has already checked the caller and the body's shape."""
    route = (event.get("httpMethod"), event.get("resource"))
    if route == ("POST", "/bookings"):
        return _create(event.get("body"))
    if route == ("GET", "/bookings/{booking_id}"):
        return _read((event.get("pathParameters") or {}).get("booking_id", ""))
    return _response(404, {"message": f"no route {route[0]} {route[1]}"})


def _create(body: object) -> dict:
    if not isinstance(body, str) or len(body.encode()) > MAX_BODY_BYTES:
        return _response(400, {"message": f"the body must be a JSON booking of at most {MAX_BODY_BYTES} bytes"})
    try:
        document = json.loads(body)
    except ValueError:
        return _response(400, {"message": "the body is not valid JSON"})
    try:
        booking_id = parse_booking(document).booking_id
    except InvalidBooking as error:
        return _response(400, {"message": str(error)})
    logger.set_correlation_id(booking_id)
    state_machine = os.environ["STATE_MACHINE_ARN"]
    existing = _existing(state_machine, booking_id)
    if existing is None:
        try:
            start_booking(_stepfunctions(), state_machine, document)
        except DuplicateBooking:  # a concurrent request with this id started it first
            existing = outcome_of(_stepfunctions(), state_machine, booking_id)
        else:
            logger.info("booking started")
            return _booking(202, outcome_of(_stepfunctions(), state_machine, booking_id))
    if existing.booking != document:
        logger.warning("booking id reused for a different booking")
        return _response(409, {"message": f"booking {booking_id} already exists with different details"})
    logger.info("repeated booking request", extra={"verdict": existing.verdict})
    return _booking(200, existing)


def _existing(state_machine: str, booking_id: str) -> Outcome | None:
    try:
        return outcome_of(_stepfunctions(), state_machine, booking_id)
    except UnknownBooking:
        return None


def _read(booking_id: str) -> dict:
    try:
        parse_booking_id(booking_id)
    except InvalidBooking as error:
        return _response(400, {"message": str(error)})
    logger.set_correlation_id(booking_id)
    try:
        outcome = outcome_of(_stepfunctions(), os.environ["STATE_MACHINE_ARN"], booking_id)
    except UnknownBooking as error:
        return _response(404, {"message": str(error)})
    logger.info("booking read", extra={"verdict": outcome.verdict})
    return _booking(200, outcome)


def _booking(status_code: int, outcome: Outcome) -> dict:
    return _response(status_code, outcome.to_json(), location=f"/bookings/{outcome.booking_id}")


def _response(status_code: int, body: dict, location: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if location:
        headers["Location"] = location
    return {"statusCode": status_code, "headers": headers, "body": json.dumps(body)}
