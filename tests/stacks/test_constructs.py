"""Each construct of the stack on its own, in a bare stack: what it creates and what it grants."""

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match, Template

from booking_saga.services import SERVICES, service_named
from stacks.function import FunctionDefaults, SagaFunction
from stacks.reservation_service import CANCEL_ACTIONS, ReservationService
from stacks.saga_chain import DeadLetterParking
from stacks.storage import saga_table
from tests.stacks.definition import resolved_definition


def _defaults(stack: cdk.Stack, removal=cdk.RemovalPolicy.DESTROY) -> FunctionDefaults:
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:x:1"
    )
    return FunctionDefaults(lambda_.Code.from_inline("def h(e, c): pass"), layer, {"SHARED": "yes"}, removal)


def _template(build) -> dict:
    stack = cdk.Stack(cdk.App(), "ConstructTest")
    build(stack)
    return Template.from_stack(stack).to_json()


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def _policy_actions(template: dict) -> set[str]:
    return {
        action
        for policy in _of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }


def test_a_saga_function_has_its_own_log_group_and_a_role_without_managed_policies():
    template = _template(
        lambda stack: SagaFunction(
            stack, "Fn", defaults=_defaults(stack), handler="flight.reserve", environment={"TABLE_NAME": "t"}
        )
    )

    (function,) = _of_type(template, "AWS::Lambda::Function").values()
    properties = function["Properties"]
    assert (properties["Runtime"], properties["Architectures"], properties["TracingConfig"]) == (
        "python3.13",
        ["arm64"],
        {"Mode": "Active"},
    )
    assert properties["Environment"]["Variables"] == {
        "SHARED": "yes",
        "TABLE_NAME": "t",
        "POWERTOOLS_SERVICE_NAME": "flight",
        "POWERTOOLS_METRICS_NAMESPACE": "ConstructTest",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    (log_group,) = _of_type(template, "AWS::Logs::LogGroup")
    assert properties["LoggingConfig"]["LogGroup"] == {"Ref": log_group}
    (role,) = _of_type(template, "AWS::IAM::Role").values()
    assert "ManagedPolicyArns" not in role["Properties"]
    assert _policy_actions(template) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_a_reservation_service_owns_a_table_two_functions_and_a_step(service):
    built = {}
    template = _template(
        lambda stack: built.setdefault(
            "service",
            ReservationService(stack, "Svc", service=service, defaults=_defaults(stack), protected=False),
        )
    )

    assert len(_of_type(template, "AWS::DynamoDB::Table")) == 1
    handlers = {body["Properties"]["Handler"] for body in _of_type(template, "AWS::Lambda::Function").values()}
    assert handlers == set(service.functions)
    reserve_actions = {"dynamodb:PutItem", *(["dynamodb:UpdateItem"] if service.capacity else [])}
    assert {action for action in _policy_actions(template) if action.startswith("dynamodb:")} == (
        reserve_actions | set(CANCEL_ACTIONS)
    )
    step = built["service"].step
    assert (step.action.state_id, step.compensation.state_id) == (service.reserve_state, service.cancel_state)


def test_only_the_last_service_confirms_bookings():
    template = _template(
        lambda stack: ReservationService(
            stack, "Svc", service=service_named("payment"), defaults=_defaults(stack), protected=False, confirms=True
        )
    )
    environments = {
        body["Properties"]["Handler"]: body["Properties"]["Environment"]["Variables"]
        for body in _of_type(template, "AWS::Lambda::Function").values()
    }
    assert environments["payment.reserve"]["CONFIRMS_BOOKING"] == "true"
    assert "CONFIRMS_BOOKING" not in environments["payment.cancel"]


@pytest.mark.parametrize(("protected", "policy"), [(True, "Retain"), (False, "Delete")])
def test_a_saga_table_is_kept_and_protected_only_on_a_protected_stage(protected, policy):
    template = _template(lambda stack: saga_table(stack, "Table", protected=protected))

    Template.from_json(template).has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": policy,
            "Properties": Match.object_like(
                {
                    "BillingMode": "PAY_PER_REQUEST",
                    "DeletionProtectionEnabled": protected,
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                }
            ),
        },
    )


def test_dead_letter_parking_sends_the_saga_to_its_queue_then_fails_compensation_failed():
    def build(stack: cdk.Stack) -> None:
        parking = DeadLetterParking(stack, "Parking", removal=cdk.RemovalPolicy.DESTROY)
        sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(parking.start))

    template = _template(build)

    states = resolved_definition(template)["States"]
    assert set(states) == {"SendToDeadLetterQueue", "CompensationFailed", "ParkFailed"}
    send = states["SendToDeadLetterQueue"]
    assert send["Resource"].endswith(":states:::sqs:sendMessage")
    assert send["Parameters"]["MessageBody"] == {"execution_arn.$": "$$.Execution.Id", "saga.$": "$"}
    assert send["Next"] == "CompensationFailed"
    assert states["CompensationFailed"]["Error"] == "CompensationFailed"
    # a send that fails for good ends in a Fail state of its own (the reconciler's), never uncaught
    (catch,) = send["Catch"]
    assert (catch["ErrorEquals"], catch["Next"]) == (["States.ALL"], "ParkFailed")
    assert states["ParkFailed"]["Error"] == "ParkFailed"
    (queue,) = _of_type(template, "AWS::SQS::Queue").values()
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
