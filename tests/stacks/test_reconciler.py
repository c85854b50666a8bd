"""The reconciler as synthesized: the rule on the state machine's ends no catch saw, its Lambda, what that Lambda
may do (nothing more), and where the events it could not handle go."""

import json

import pytest


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.template


def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def function(template: dict, handler: str) -> tuple[str, dict]:
    (found,) = [
        (name, body["Properties"])
        for name, body in of_type(template, "AWS::Lambda::Function").items()
        if body["Properties"]["Handler"] == handler
    ]
    return found


def statements(template: dict, role: str) -> list[dict]:
    return [
        statement
        for policy in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def queue(template: dict, prefix: str) -> str:
    (name,) = [name for name in of_type(template, "AWS::SQS::Queue") if name.startswith(prefix)]
    return name


def test_the_rule_hands_every_failed_timed_out_or_aborted_execution_of_this_machine_to_the_reconciler(template):
    (rule,) = of_type(template, "AWS::Events::Rule").values()
    (machine,) = of_type(template, "AWS::StepFunctions::StateMachine")
    reconciler, _ = function(template, "reconciler.handle")

    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"] == {"stateMachineArn": [{"Ref": machine}], "status": ["FAILED", "TIMED_OUT", "ABORTED"]}
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [reconciler, "Arn"]}
    # delivery failures: retried, then kept on the reconciler's failure queue
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue(template, "ReconcilerFailures"), "Arn"]}}


def test_a_failed_reconciliation_is_retried_by_lambda_then_kept_on_the_failure_queue(template):
    _, properties = function(template, "reconciler.handle")

    assert properties["DeadLetterConfig"] == {
        "TargetArn": {"Fn::GetAtt": [queue(template, "ReconcilerFailures"), "Arn"]}
    }
    assert properties["Timeout"] >= 30  # three cancels, each tried again, and a park


def rendered(value: object) -> str:
    """A string the template builds with Fn::Join, each function's ARN written as its logical id."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(rendered(part) for part in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    raise AssertionError(f"unexpected {value}")


def test_it_runs_the_saga_cancels_in_the_definitions_reverse_order(template):
    _, properties = function(template, "reconciler.handle")
    cancels = json.loads(rendered(properties["Environment"]["Variables"]["CANCELS"]))

    assert [cancel["step"] for cancel in cancels] == ["RefundPayment", "CancelHotel", "CancelFlight"]
    handlers = [template["Resources"][cancel["function"]]["Properties"]["Handler"] for cancel in cancels]
    assert handlers == ["payment.cancel", "hotel.cancel", "flight.cancel"]


def test_it_may_only_invoke_the_cancels_read_this_machines_executions_park_and_record(template):
    reconciler, properties = function(template, "reconciler.handle")
    role = properties["Role"]["Fn::GetAtt"][0]
    cancels = {function(template, f"{service}.cancel")[0] for service in ("flight", "hotel", "payment")}
    (bookings,) = [
        name
        for name in of_type(template, "AWS::DynamoDB::Table")
        if name == template["Outputs"]["BookingsTable"]["Value"]["Ref"]
    ]

    granted: dict[str, list] = {}
    for statement in statements(template, role):
        assert statement["Effect"] == "Allow"
        for action in actions(statement):
            granted.setdefault(action, []).append(json.dumps(statement["Resource"]))
    assert set(granted) == {
        "lambda:InvokeFunction",
        "states:DescribeExecution",
        "states:GetExecutionHistory",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "dynamodb:PutItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    invoked = " ".join(granted["lambda:InvokeFunction"])
    assert all(cancel in invoked for cancel in cancels)
    assert not [name for name in of_type(template, "AWS::Lambda::Function") if name in invoked and name not in cancels]
    # the saga's dead-letter queue (parking), and its own failure queue (Lambda sends failed events there)
    sent_to = " ".join(granted["sqs:SendMessage"])
    assert queue(template, "Parking") in sent_to and queue(template, "ReconcilerFailures") in sent_to
    assert len(granted["sqs:SendMessage"]) == 2
    assert granted["dynamodb:PutItem"] == [json.dumps({"Fn::GetAtt": [bookings, "Arn"]})]
    assert all(":execution:" in resource for resource in granted["states:DescribeExecution"])
    assert not [action for action in granted if action.startswith("states:") and "Execution" not in action]
    assert reconciler not in invoked
