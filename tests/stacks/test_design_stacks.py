"""The synthesized BookingChoreography and BookingAtomic templates: the flow's rules as ``reactions()`` says, each
target's retry policy and dead-letter queue, what a failed invocation becomes, and least privilege per function."""

import json

import pytest

from booking_saga.atomic import table_variable
from booking_saga.choreography import FAILURE_RECORD, PARKED, reactions
from booking_saga.designs import DESIGNS
from booking_saga.services import SERVICES


def template(assembly, stack: str) -> dict:
    return json.loads((assembly.directory / f"{stack}.template.json").read_text())


@pytest.fixture(scope="module")
def choreography(assembly) -> dict:
    return template(assembly, DESIGNS["choreography"].stack)["Resources"]


@pytest.fixture(scope="module")
def atomic(assembly) -> dict:
    return template(assembly, DESIGNS["atomic"].stack)["Resources"]


def of_type(resources: dict, kind: str) -> dict[str, dict]:
    return {name: resource["Properties"] for name, resource in resources.items() if resource["Type"] == kind}


def function_named(resources: dict, handler: str, service: str | None = None) -> str:
    """The logical id of the function with this handler (and, for the choreography's, this SERVICE)."""
    found = [
        name
        for name, function in of_type(resources, "AWS::Lambda::Function").items()
        if function["Handler"] == handler
        and (service is None or function["Environment"]["Variables"].get("SERVICE") == service)
    ]
    assert len(found) == 1, (handler, service, found)
    return found[0]


def dynamodb_grants(resources: dict, function: str) -> dict[str, set[str]]:
    """The DynamoDB actions the function's role allows, by the logical id of the table they are allowed on."""
    role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    grants: dict[str, set[str]] = {}
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Roles"]:
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            dynamodb = {action for action in actions if action.startswith("dynamodb:")}
            resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources_ if dynamodb else []:
                grants.setdefault(resource["Fn::GetAtt"][0], set()).update(dynamodb)
    return grants


def test_every_reaction_is_a_rule_on_its_events_to_its_services_function(choreography):
    rules = {
        tuple(rule["EventPattern"].get("detail-type", [])): rule
        for rule in of_type(choreography, "AWS::Events::Rule").values()
    }
    for reaction in reactions():
        rule = rules[reaction.on]
        function = function_named(choreography, f"choreography.{reaction.action}", reaction.service.name)
        assert [target["Arn"]["Fn::GetAtt"][0] for target in rule["Targets"]] == [function]


def test_every_target_retries_and_has_a_dead_letter_queue_of_its_own(choreography):
    targets = [target for rule in of_type(choreography, "AWS::Events::Rule").values() for target in rule["Targets"]]
    queues = [target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] for target in targets]
    assert len(targets) == len(reactions()) + 1 + 2 * len(SERVICES) + 1  # reactions, the log, failures, parking
    assert all(target["RetryPolicy"]["MaximumRetryAttempts"] > 0 for target in targets)
    assert len(set(queues)) == len(queues)


def test_a_failed_invocation_goes_to_the_bus_and_a_rule_hands_it_on(choreography):
    """A reserve's failure record reaches its own cancel; a cancel's, the bookings service (which parks it)."""
    configs = of_type(choreography, "AWS::Lambda::EventInvokeConfig")
    bus = next(iter(of_type(choreography, "AWS::Events::EventBus")))
    destinations = {config["FunctionName"]["Ref"]: config["DestinationConfig"] for config in configs.values()}
    recorder = function_named(choreography, "choreography.record")
    failure_rules = [
        rule
        for rule in of_type(choreography, "AWS::Events::Rule").values()
        if rule["EventPattern"].get("detail-type") == [FAILURE_RECORD]
    ]
    handed = {
        rule["EventPattern"]["detail"]["requestContext"]["functionArn"][0]["prefix"]["Fn::GetAtt"][0]: rule["Targets"][
            0
        ]["Arn"]["Fn::GetAtt"][0]
        for rule in failure_rules
    }
    for service in SERVICES:
        reserve = function_named(choreography, "choreography.reserve", service.name)
        cancel = function_named(choreography, "choreography.cancel", service.name)
        for function in (reserve, cancel):
            assert destinations[function] == {"OnFailure": {"Destination": {"Fn::GetAtt": [bus, "Arn"]}}}
        assert handed[reserve] == cancel
        assert handed[cancel] == recorder


def test_a_parked_booking_lands_on_the_parking_queue_as_its_state_and_alarms(choreography):
    rule = next(
        rule
        for rule in of_type(choreography, "AWS::Events::Rule").values()
        if rule["EventPattern"].get("detail-type") == [PARKED]
    )
    target = rule["Targets"][0]
    assert target["InputPath"] == "$.detail.parked"
    alarms = of_type(choreography, "AWS::CloudWatch::Alarm").values()
    watched = {
        dimension["Value"]["Fn::GetAtt"][0]
        for alarm in alarms
        for dimension in alarm["Dimensions"]
        if dimension["Name"] == "QueueName"
    }
    assert target["Arn"]["Fn::GetAtt"][0] in watched
    dead_letters = {
        t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        for r in of_type(choreography, "AWS::Events::Rule").values()
        for t in r["Targets"]
    }
    assert dead_letters <= watched  # every undelivered event alarms


def test_each_services_functions_may_touch_only_its_own_table_and_the_log_only_the_recorder(choreography):
    tables = {name for name in of_type(choreography, "AWS::DynamoDB::Table")}
    log = next(name for name in tables if name.startswith("SagaLog"))
    for service in SERVICES:
        own = next(name for name in tables if name.startswith(service.name.capitalize()))
        for action in ("reserve", "cancel"):
            grants = dynamodb_grants(choreography, function_named(choreography, f"choreography.{action}", service.name))
            assert grants == {own: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}}
    assert dynamodb_grants(choreography, function_named(choreography, "choreography.record")) == {
        log: {"dynamodb:PutItem", "dynamodb:Query"}
    }
    keys = of_type(choreography, "AWS::DynamoDB::Table")[log]["KeySchema"]
    assert keys == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]


def test_the_atomic_design_is_one_function_allowed_a_transaction_over_every_table(atomic):
    (function,) = of_type(atomic, "AWS::Lambda::Function")
    tables = of_type(atomic, "AWS::DynamoDB::Table")
    variables = atomic[function]["Properties"]["Environment"]["Variables"]
    named = {variables[table_variable(service.name)]["Ref"] for service in SERVICES}
    bookings = variables["BOOKINGS_TABLE"]["Ref"]
    assert named | {bookings} == set(tables)
    service_actions = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}
    assert dynamodb_grants(atomic, function) == {table: service_actions for table in named} | {
        bookings: {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    }
