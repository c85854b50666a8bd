"""A client of the booking HTTP API: IAM-signed (SigV4) requests with the caller's AWS credentials.

``book``, ``outcome`` and ``wait_for`` answer with the same ``Outcome`` that reading Step Functions gives,
and turn the API's refusals into the library's errors (400: ``InvalidBooking``, 404: ``UnknownBooking``,
409: ``DuplicateBooking``), so a caller cannot tell the transports apart.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from booking_saga.contract import InvalidBooking
from booking_saga.executions import DuplicateBooking, Outcome, UnknownBooking

TIMEOUT_SECONDS = 30  # API Gateway's own integration limit is 29 s


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict


class ApiError(RuntimeError):
    """The API could not be reached, or it answered with something that is not JSON."""


class BookingApi:
    def __init__(self, url: str, session: boto3.Session):
        self.url = url if url.endswith("/") else url + "/"
        self._session = session

    def book(self, booking: dict) -> tuple[bool, Outcome]:
        """POST the booking: (True, the booking) when this request started it (202), (False, ...) for a repeat."""
        response = self.create(booking)
        return response.status == 202, _outcome(response, 202, 200)

    def outcome(self, booking_id: str) -> Outcome:
        return _outcome(self.get(booking_id), 200)

    def wait_for(self, booking_id: str, timeout: float = 120, poll: float = 0.2) -> Outcome:
        """Poll until the booking's execution ends, or ``timeout`` seconds pass (then it is still running)."""
        deadline = time.monotonic() + timeout
        outcome = self.outcome(booking_id)
        while outcome.status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(poll)
            outcome = self.outcome(booking_id)
        return outcome

    def create(self, booking: dict) -> ApiResponse:
        """``POST /bookings``: 202 when the saga starts, 200 for a repeat of the same booking."""
        return self.send("POST", "bookings", json.dumps(booking).encode())

    def get(self, booking_id: str) -> ApiResponse:
        """``GET /bookings/{booking_id}``: the booking's status, step reached, error and compensations."""
        return self.send("GET", f"bookings/{urllib.parse.quote(booking_id, safe='')}")

    def send(self, method: str, path: str, body: bytes | None = None) -> ApiResponse:
        """Any request to the API (``path`` relative to its URL), signed; any status is returned, not raised."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = AWSRequest(method=method, url=self.url + path, data=body, headers=headers)
        credentials = self._session.get_credentials()
        if credentials is None:
            raise ApiError("no AWS credentials to sign the request with (the API requires IAM authorization)")
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self._session.region_name).add_auth(request)
        prepared = urllib.request.Request(request.url, data=body, headers=dict(request.headers), method=method)
        try:
            with urllib.request.urlopen(prepared, timeout=TIMEOUT_SECONDS) as response:
                return ApiResponse(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            return ApiResponse(error.code, _json(error.read()))
        except (urllib.error.URLError, TimeoutError) as error:
            raise ApiError(f"cannot reach the booking API at {self.url}: {getattr(error, 'reason', error)}") from None


def _outcome(response: ApiResponse, *expected: int) -> Outcome:
    """The booking the API answered with, or the library's error for what it answered instead."""
    if response.status in expected:
        return Outcome.from_json(response.body)
    message = str(response.body.get("message", response.body))
    refusals = {400: InvalidBooking, 404: UnknownBooking, 409: DuplicateBooking}
    if response.status in refusals:
        raise refusals[response.status](message)
    raise ApiError(f"the booking API answered {response.status}: {message}")


def _json(data: bytes) -> dict:
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        raise ApiError(f"the booking API answered with something that is not JSON: {data[:200]!r}") from None
    return body if isinstance(body, dict) else {"value": body}
