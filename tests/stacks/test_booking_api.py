"""The booking HTTP API as synthesized: routes, IAM authorization, the request model and validator, the stage's
logs and tracing, the API Lambda's narrow grants, and a schema that never refuses a booking the contract accepts."""

import json

import pytest
from hypothesis import given, settings
from jsonschema import Draft4Validator

from booking_saga.contract import Contract, InvalidBooking
from tests.factories import booking
from tests.strategies import ANYTHING, VALID_DOCUMENTS, examples


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: body["Properties"] for name, body in template["Resources"].items() if body["Type"] == kind}


def only(template: dict, kind: str) -> tuple[str, dict]:
    (item,) = resources(template, kind).items()
    return item


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.template


@pytest.fixture(scope="module")
def methods(template) -> dict[tuple[str, str], dict]:
    """(HTTP method, resource path) -> the method's properties."""
    paths = {name: props["PathPart"] for name, props in resources(template, "AWS::ApiGateway::Resource").items()}
    parents = {name: props["ParentId"] for name, props in resources(template, "AWS::ApiGateway::Resource").items()}

    def path(resource: str) -> str:
        parent = parents[resource]
        return (path(parent["Ref"]) if isinstance(parent, dict) and "Ref" in parent else "") + "/" + paths[resource]

    return {
        (props["HttpMethod"], path(props["ResourceId"]["Ref"])): props
        for props in resources(template, "AWS::ApiGateway::Method").values()
    }


@pytest.fixture(scope="module")
def contract(template) -> Contract:
    """The stack's contract, as its BookingContract output (and every function's environment) carry it."""
    return Contract.from_json(json.loads(template["Outputs"]["BookingContract"]["Value"]))


@pytest.fixture(scope="module")
def booking_schema(template, methods) -> dict:
    model = methods["POST", "/bookings"]["RequestModels"]["application/json"]["Ref"]
    return template["Resources"][model]["Properties"]["Schema"]


def test_two_routes_both_iam_authorized_and_proxied_to_the_api_lambda(template, methods):
    assert set(methods) == {("POST", "/bookings"), ("GET", "/bookings/{booking_id}")}
    api_function = next(
        name
        for name, props in resources(template, "AWS::Lambda::Function").items()
        if props["Handler"] == "bookings_api.handle"
    )
    for route, method in methods.items():
        assert method["AuthorizationType"] == "AWS_IAM", route
        assert method["Integration"]["Type"] == "AWS_PROXY", route
        assert api_function in str(method["Integration"]["Uri"]), route


def test_both_routes_are_validated_before_the_lambda_runs(template, methods):
    for route, method in methods.items():
        validator = template["Resources"][method["RequestValidatorId"]["Ref"]]["Properties"]
        assert validator["ValidateRequestBody"] is True, route
        assert validator["ValidateRequestParameters"] is True, route
    assert methods["GET", "/bookings/{booking_id}"]["RequestParameters"] == {"method.request.path.booking_id": True}
    _, refused_body = only(template, "AWS::ApiGateway::GatewayResponse")
    assert refused_body["ResponseType"] == "BAD_REQUEST_BODY"
    assert "validationErrorString" in refused_body["ResponseTemplates"]["application/json"]


def test_the_stage_is_traced_logs_access_and_errors_and_has_its_own_throttle(template):
    _, stage = only(template, "AWS::ApiGateway::Stage")
    assert stage["StageName"] == "v1"
    assert stage["TracingEnabled"] is True
    assert stage["MethodSettings"] == [
        {
            "DataTraceEnabled": False,
            "HttpMethod": "*",
            "LoggingLevel": "ERROR",
            "ResourcePath": "/*",
            "ThrottlingBurstLimit": 200,
            "ThrottlingRateLimit": 100,
        }
    ]
    log_group = stage["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert template["Resources"][log_group]["Properties"]["RetentionInDays"] == 30


def test_the_api_url_is_a_stack_output(template):
    rest_api, _ = only(template, "AWS::ApiGateway::RestApi")
    stage, _ = only(template, "AWS::ApiGateway::Stage")
    assert set(template["Outputs"]) >= {"ApiUrl"}
    url = template["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert {"Ref": rest_api} in url and {"Ref": stage} in url
    assert not [name for name in template["Outputs"] if name.startswith("BookingApiEndpoint")]


def test_the_api_lambda_may_start_and_read_this_state_machines_executions_only(template):
    machine, _ = only(template, "AWS::StepFunctions::StateMachine")
    role = next(
        props["Role"]["Fn::GetAtt"][0]
        for props in resources(template, "AWS::Lambda::Function").values()
        if props["Handler"] == "bookings_api.handle"
    )
    statements = [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Roles"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    grants = {
        action: statement["Resource"]
        for statement in statements
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        if action.startswith("states:")
    }
    assert set(grants) == {"states:StartExecution", "states:DescribeExecution", "states:GetExecutionHistory"}
    assert grants["states:StartExecution"] == {"Ref": machine}
    for action in ("states:DescribeExecution", "states:GetExecutionHistory"):
        assert ":execution:" in str(grants[action]) and machine in str(grants[action]), action


@settings(max_examples=examples(300), deadline=None)
@given(VALID_DOCUMENTS)
def test_the_schema_lets_every_valid_booking_through(booking_schema, document):
    assert list(Draft4Validator(booking_schema).iter_errors(document)) == []


@settings(max_examples=examples(300), deadline=None)
@given(ANYTHING)
def test_what_the_schema_refuses_the_contract_refuses_too(booking_schema, contract, document):
    """So API Gateway's 400 never turns away a booking the saga would have taken."""
    if not Draft4Validator(booking_schema).is_valid(document):
        with pytest.raises(InvalidBooking):
            contract.parse(document)


def test_the_schema_is_the_contracts(booking_schema, contract):
    assert booking_schema == contract.json_schema()
    assert booking_schema["properties"]["payment"]["properties"]["currency"]["enum"] == sorted(contract.currencies)


@pytest.mark.parametrize(
    "change",
    [
        {"booking_id": ""},
        {"booking_id": "a b"},
        {"customer_id": 42},
        {"flight": {"flight_id": "NH101", "seats": 10}},
        {"hotel": {"hotel_id": "TOKYO-GRAND"}},
        {"payment": {"amount": 0, "currency": "JPY"}},
        {"payment": {"amount": 1, "currency": "jpy"}},
        {"payment": {"amount": 1, "currency": "ZZZ"}},
        {"unknown": True},
        {"chaos": "payment"},
    ],
)
def test_the_schema_refuses_what_it_can_see_is_wrong(booking_schema, change):
    assert Draft4Validator(booking_schema).is_valid(booking())
    assert not Draft4Validator(booking_schema).is_valid(booking() | change)
