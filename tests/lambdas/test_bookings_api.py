"""The HTTP API's handler on requests it answers without Step Functions: what API Gateway lets through
but the contract refuses. The routes end to end, over HTTP, are in tests/test_api.py."""

import json

import pytest

import bookings_api
from booking_saga.contract import ENVIRONMENT_VARIABLE, MAX_BOOKING_BYTES, default_contract
from tests.factories import booking
from tests.lambdas.support import LambdaContext


@pytest.fixture(autouse=True)
def no_step_functions(monkeypatch):
    """Any call to Step Functions or the bookings table fails the test: these requests must be answered first.
    The stack's contract is a protected stage's: chaos off."""
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:Saga")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, json.dumps(default_contract(chaos_enabled=False).to_json()))
    monkeypatch.setattr(bookings_api.dependencies, "stepfunctions", lambda: pytest.fail("Step Functions was called"))
    monkeypatch.setattr(bookings_api.dependencies, "registry", lambda: pytest.fail("the bookings table was used"))


def call(method: str, resource: str, body: object = None, booking_id: str | None = None) -> tuple[int, dict]:
    event = {
        "httpMethod": method,
        "resource": resource,
        "body": body,
        "pathParameters": None if booking_id is None else {"booking_id": booking_id},
    }
    response = bookings_api.handle(event, LambdaContext())
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, f"the body must be a JSON booking of at most {MAX_BOOKING_BYTES} bytes"),
        ("x" * (MAX_BOOKING_BYTES + 1), f"the body must be a JSON booking of at most {MAX_BOOKING_BYTES} bytes"),
        ("{not json", "the body is not valid JSON"),
        (json.dumps(booking(payment={"amount": 1.5, "currency": "JPY"})), "payment.amount must be above 0"),
        (json.dumps(booking(payment={"amount": 10, "currency": "ZZZ"})), "payment.currency must be one of EUR"),
        (json.dumps(booking(chaos={"fail_at": "payment"})), "chaos is not enabled on this stack"),
        (json.dumps([booking()]), "booking must be an object"),
    ],
)
def test_a_booking_the_contract_refuses_is_a_400(body, message):
    status, answer = call("POST", "/bookings", body)

    assert status == 400
    assert answer["message"].startswith(message)


@pytest.mark.parametrize("booking_id", ["", "a b", "x" * 65, "../etc"])
def test_a_malformed_booking_id_is_a_400(booking_id):
    status, answer = call("GET", "/bookings/{booking_id}", booking_id=booking_id)

    assert (status, answer["message"]) == (400, "booking_id must be 1-64 characters of A-Z a-z 0-9 _ -")


def test_an_unknown_route_is_a_404():
    assert call("DELETE", "/bookings/{booking_id}", booking_id="trip-1")[0] == 404
