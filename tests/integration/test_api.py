"""The booking HTTP API, driven over HTTP on the local cloud: API Gateway's routing, IAM check and
request model from the deployed template, in front of the deployed API Lambda and the saga."""

import json
import urllib.error
import urllib.request

import pytest

from booking_saga.executions import execution_arn_for
from saga.bookings import wait_for
from tests.factories import booking

KEEP_LAMBDA_LOGS = True  # tests/conftest.py: the API Lambda's log lines are read below


@pytest.fixture(scope="module")
def api(deployment):
    return deployment.api()


def unsigned(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_post_starts_the_saga_and_get_follows_it_to_the_end(api, deployment):
    created = api.create(booking("api-happy-1"))

    assert created.status == 202
    assert created.body["booking_id"] == "api-happy-1"
    assert created.body["execution_arn"] == execution_arn_for(deployment.state_machine_arn, "api-happy-1")
    wait_for(deployment, "api-happy-1")
    read = api.get("api-happy-1")
    assert read.status == 200
    assert read.body["verdict"] == "confirmed"
    assert read.body["step_reached"] == "BookingConfirmed"
    assert read.body["error"] is None
    assert read.body["compensations"] == []


def test_get_of_a_failed_booking_names_the_error_and_the_compensations_that_ran(api, deployment):
    assert api.create(booking("api-declined-1", payment={"amount": 10**9, "currency": "JPY"})).status == 202
    wait_for(deployment, "api-declined-1")

    read = api.get("api-declined-1")

    assert read.status == 200
    assert read.body["verdict"] == "compensated"
    assert read.body["error"] == "PaymentDeclined"
    assert read.body["failed_step"] == "ProcessPayment"
    assert read.body["compensations"] == ["RefundPayment", "CancelHotel", "CancelFlight"]
    assert read.body["step_reached"] == "BookingFailed"
    # the error's message, never the handler's stack trace or the files it ran from
    assert read.body["cause"] == "ProcessPayment: 1000000000 JPY is above the card limit of 500000"
    assert "stackTrace" not in json.dumps(read.body) and ".py" not in json.dumps(read.body)


def test_a_repeated_post_of_the_same_booking_starts_nothing_and_returns_the_same_booking(api, deployment):
    first = api.create(booking("api-repeat-1"))
    wait_for(deployment, "api-repeat-1")

    again = api.create(booking("api-repeat-1"))

    assert (first.status, again.status) == (202, 200)
    assert again.body["execution_arn"] == first.body["execution_arn"]
    assert again.body["verdict"] == "confirmed"
    executions = deployment.client("stepfunctions").list_executions(stateMachineArn=deployment.state_machine_arn)
    assert [e["name"] for e in executions["executions"]].count("api-repeat-1") == 1
    assert deployment.ledger("flight").record("api-repeat-1")["status"] == "RESERVED"


def test_the_same_booking_id_with_other_details_is_a_conflict(api, deployment):
    assert api.create(booking("api-conflict-1")).status == 202

    conflict = api.create(booking("api-conflict-1", customer_id="someone-else"))

    assert conflict.status == 409
    assert "already exists" in conflict.body["message"]
    assert api.get("api-conflict-1").body["execution_arn"].endswith(":api-conflict-1")


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ({**booking("api-bad-1"), "flight": {"flight_id": "NH101"}}, "seats"),
        (booking("api-bad-2", payment={"amount": "84000", "currency": "JPY"}), "amount"),
        (booking("api-bad 3"), "booking_id"),
        ({**booking("api-bad-4"), "extra": 1}, "extra"),
        ([1, 2, 3], "object"),
    ],
)
def test_a_malformed_body_is_a_400_and_starts_no_execution(api, deployment, document, names):
    refused = api.create(document)

    assert refused.status == 400
    assert refused.body["message"].startswith("Invalid request body")
    assert names in refused.body["message"]
    listed = deployment.client("stepfunctions").list_executions(stateMachineArn=deployment.state_machine_arn)
    assert not any(execution["name"].startswith("api-bad") for execution in listed["executions"])


def test_a_body_the_schema_allows_but_the_contract_refuses_is_a_400_from_the_lambda(api, deployment):
    """The schema cannot say "no decimals in yen"; the contract every step checks can."""
    refused = api.create(booking("api-bad-5", payment={"amount": 1.5, "currency": "JPY"}))

    assert refused.status == 400
    assert refused.body["message"] == "payment.amount must be above 0, at most 1000000000, with no decimals (JPY)"
    with pytest.raises(Exception, match="ExecutionDoesNotExist"):
        deployment.client("stepfunctions").describe_execution(
            executionArn=execution_arn_for(deployment.state_machine_arn, "api-bad-5")
        )


def test_a_body_that_is_not_json_is_a_400(api):
    refused = api.send("POST", "bookings", b"{not json")

    assert refused.status == 400
    assert refused.body["message"] == "Invalid request body"


def test_an_unknown_booking_is_a_404(api):
    missing = api.get("no-such-booking")

    assert missing.status == 404
    assert missing.body["message"] == "no booking no-such-booking in this stack"


def test_an_unsigned_request_is_refused_as_api_gateway_refuses_it(deployment):
    status, body = unsigned(deployment.api_url + "bookings", "POST", json.dumps(booking("api-unsigned-1")).encode())

    assert status == 403
    assert body["message"] == "Missing Authentication Token"
    assert unsigned(deployment.api_url + "bookings/api-happy-1")[0] == 403


def test_an_unknown_route_or_stage_is_refused(api, deployment):
    assert api.send("DELETE", "bookings/api-happy-1").status == 403
    assert api.send("GET", "trips").status == 403
    other_stage = deployment.api_url.replace("/v1/", "/v2/")
    assert unsigned(other_stage + "bookings/x")[0] == 403


def test_the_api_lambda_logs_each_request_with_its_booking_id(api, deployment, lambda_logs):
    api.create(booking("api-logged-1"))
    api.get("api-logged-1")

    (function,) = [
        function["FunctionName"]
        for function in deployment.client("lambda").list_functions()["Functions"]
        if function["Handler"] == "bookings_api.handle"
    ]
    lines = [json.loads(line) for line in (lambda_logs / f"{function}.log").read_text().splitlines()]
    logged = [line for line in lines if line.get("correlation_id") == "api-logged-1"]
    assert [line["message"] for line in logged] == ["booking started", "booking read"]
    assert {line["service"] for line in logged} == {"bookings_api"}
