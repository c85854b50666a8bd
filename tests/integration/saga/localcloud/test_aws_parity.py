"""Probes: where moto and AWS's documentation disagree, the local cloud does what AWS documents.

Each test builds the smallest state machine or function that shows one documented behaviour, through the
public APIs of a bare local cloud, and cites the page it follows. A probe failing means the local cloud no
longer fails (or succeeds) where AWS would.
"""

import http.client
import io
import json
import textwrap
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.component.common.query_language import QueryLanguage
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

from saga.localcloud import LocalCloud

ROLE = "arn:aws:iam::123456789012:role/x"
WAIT_SCALE = 0.001  # Lambda's 60 s and 120 s between asynchronous retries take 0.06 s and 0.12 s
TIMEOUT_SCALE = 0.5  # a state machine's TimeoutSeconds of 2 ends it after 1 s

HANDLERS = """
import json
import pathlib
import time


class Boom(Exception):
    pass


def counted(event, context):
    print("invoked", json.dumps(event))
    return event


def fails(event, context):
    print("invoked", json.dumps(event))
    raise Boom("always")


def big(event, context):
    return "x" * event["bytes"]


def slow(event, context):
    print("invoked", json.dumps(event))
    time.sleep(event.get("seconds", 1))
    return event


def slow_then_fails(event, context):
    print("invoked", json.dumps(event))
    time.sleep(event.get("seconds", 1))
    raise Boom("too late")


def fails_once(event, context):
    print("invoked", json.dumps(event))
    marker = pathlib.Path(event["marker"])
    if not marker.exists():
        marker.touch()
        raise Boom("first attempt")
    return "second attempt"
"""


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def cloud(logs):
    """A bare local cloud (no stack), with the role every probe's functions and state machines use."""
    with LocalCloud(wait_scale=WAIT_SCALE, timeout_scale=TIMEOUT_SCALE, log_dir=logs) as cloud:
        cloud.client("iam").create_role(RoleName="x", AssumeRolePolicyDocument="{}")
        yield cloud


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("h.py", textwrap.dedent(source))
    return buffer.getvalue()


def function(cloud, name: str, handler: str, source: str = HANDLERS, **settings) -> str:
    """Create a Python function from ``source`` (module ``h``); return its ARN."""
    created = cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=ROLE,
        Handler=f"h.{handler}",
        Code={"ZipFile": _zip(source)},
        Timeout=10,
        **settings,
    )
    return created["FunctionArn"]


def invocations(logs: Path, name: str) -> int:
    """How many times the function ran: each handler prints one line per invocation to its log."""
    log = logs / f"{name}.log"
    return log.read_text().count("invoked ") if log.exists() else 0


def state_machine(cloud, name: str, states: dict, start_at: str, **top_level) -> str:
    definition = {"StartAt": start_at, "States": states, **top_level}
    created = cloud.client("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE
    )
    return created["stateMachineArn"]


def invoke_task(function_arn: str, **fields) -> dict:
    """A Task that invokes a function through the optimized Lambda integration with the state's input."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
        **fields,
    }


def start(cloud, machine_arn: str, name: str, document: Any) -> str:
    return cloud.client("stepfunctions").start_execution(
        stateMachineArn=machine_arn, name=name, input=json.dumps(document)
    )["executionArn"]


def finish(cloud, execution_arn: str, timeout: float = 30) -> tuple[dict, list[dict]]:
    """Wait for the execution to close; return DescribeExecution's answer and the history."""
    stepfunctions = cloud.client("stepfunctions")
    eventually(lambda: stepfunctions.describe_execution(executionArn=execution_arn)["status"] != "RUNNING", timeout)
    described = stepfunctions.describe_execution(executionArn=execution_arn)
    return described, stepfunctions.get_execution_history(executionArn=execution_arn)["events"]


def run(cloud, machine_arn: str, name: str, document: Any) -> tuple[dict, list[dict]]:
    return finish(cloud, start(cloud, machine_arn, name, document))


def entered(events: list[dict]) -> list[str]:
    return [event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event]


def eventually(condition: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
    return result


CAUGHT = {"Caught": {"Type": "Pass", "End": True}}


def catch_all(**fields) -> dict:
    return {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True, **fields}


def test_a_runtime_error_is_neither_retried_nor_caught(cloud, logs):
    """https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html: "The States.ALL error type
    [...] can't catch the States.DataLimitExceeded terminal error and Runtime error types." A ResultSelector path
    that selects nothing is a runtime error: neither a Retrier nor a Catcher on States.ALL handles it, and the
    execution fails with it."""
    echo = function(cloud, "runtime-echo", "counted")
    task = invoke_task(
        echo,
        ResultSelector={"x.$": "$.missing"},
        Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 1}],
        **catch_all(),
    )
    machine = state_machine(cloud, "runtime", {"Task": task, **CAUGHT}, "Task")

    described, events = run(cloud, machine, "runtime-1", {"id": 1})

    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert "Caught" not in entered(events)
    assert invocations(logs, "runtime-echo") == 1  # not retried either
    assert events[-1]["type"] == "ExecutionFailed"


def test_a_result_over_the_payload_quota_is_not_caught(cloud):
    """https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: the input or output of a task, state
    or execution is at most "262,144 bytes of data as a UTF-8 encoded string"; concepts-error-handling.html: the
    resulting States.DataLimitExceeded is "a terminal error that can't be caught by the States.ALL error type"."""
    big = function(cloud, "quota-big", "big")
    machine = state_machine(cloud, "quota-output", {"Task": invoke_task(big, **catch_all()), **CAUGHT}, "Task")

    described, events = run(cloud, machine, "quota-output-1", {"bytes": 300 * 1024})

    assert described["status"] == "FAILED"
    assert described["error"] == "States.DataLimitExceeded"
    assert "Caught" not in entered(events)


def test_the_quota_counts_compact_utf8_bytes_up_to_and_including_262144(cloud):
    """service-quotas.html: "262,144 bytes of data as a UTF-8 encoded string". A Pass state's output of exactly that
    many bytes of compact JSON passes (moto counted ", " separators and refused the limit itself); one more fails."""
    pass_through = {"Through": {"Type": "Pass", "End": True}}
    machine = state_machine(cloud, "quota-exact", pass_through, "Through")
    overhead = len(json.dumps({"s": "", "n": ["é", 1]}, separators=(",", ":"), ensure_ascii=False).encode())

    def document(size: int) -> dict:
        return {"s": "x" * (size - overhead), "n": ["é", 1]}  # "é" is two bytes in UTF-8, six as a JSON escape

    at_limit, _ = run(cloud, machine, "quota-exact-1", document(262_144))
    over, _ = run(cloud, machine, "quota-exact-2", document(262_145))

    assert at_limit["status"] == "SUCCEEDED"
    assert (over["status"], over["error"]) == ("FAILED", "States.DataLimitExceeded")


def test_a_task_input_over_the_quota_after_parameters_fails_the_execution(cloud, logs):
    """concepts-error-handling.html: States.DataLimitExceeded is reported when "the state input is larger than the
    payload size quota after Parameters processing"; service-quotas.html applies the quota to "input data when
    scheduling a task". Parameters that copy a 150 KB field twice make a 300 KB input: the function never runs."""
    echo = function(cloud, "quota-input-echo", "counted")
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": echo, "Payload": {"a.$": "$.half", "b.$": "$.half"}},
        **catch_all(),
    }
    machine = state_machine(cloud, "quota-input", {"Task": task, **CAUGHT}, "Task")

    described, events = run(cloud, machine, "quota-input-1", {"half": "x" * 150_000})

    assert (described["status"], described["error"]) == ("FAILED", "States.DataLimitExceeded")
    assert "Caught" not in entered(events)
    assert invocations(logs, "quota-input-echo") == 0


def test_other_errors_are_still_retried_and_caught(cloud, logs):
    """concepts-error-handling.html: a Retrier retries the errors it names, up to MaxAttempts, and then a Catcher
    that matches (States.ALL matches any other error) moves the execution on to its Next state."""
    failing = function(cloud, "regression-fails", "fails")
    task = invoke_task(
        failing, Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1, "IntervalSeconds": 1}], **catch_all()
    )
    machine = state_machine(cloud, "regression", {"Task": task, **CAUGHT}, "Task")

    described, events = run(cloud, machine, "regression-1", {"id": 1})

    assert described["status"] == "SUCCEEDED"
    assert entered(events) == ["Task", "Caught"]
    assert json.loads(described["output"])["Error"] == "Boom"
    assert invocations(logs, "regression-fails") == 2


def two_tasks(cloud, name: str, first: str, **top_level) -> str:
    """First ``first`` (a function ARN), then a function that counts its invocations: ``<name>-second``."""
    second = function(cloud, f"{name}-second", "counted")
    states = {"First": invoke_task(first, Next="Second"), "Second": invoke_task(second, End=True)}
    return state_machine(cloud, name, states, "First", **top_level)


def task_started(cloud, execution_arn: str) -> bool:
    events = cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return any(event["type"] == "TaskStarted" for event in events)


def test_stop_execution_aborts_between_states_at_once(cloud, logs):
    """https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html: "Stops an execution",
    with the caller's error and cause, and answers with the stopDate. The execution is ABORTED at once, no later
    state runs, and the first task's result, arriving after the stop, is not recorded: the history ends with
    ExecutionAborted (GetExecutionHistory)."""
    first = function(cloud, "stop-first", "slow")
    machine = two_tasks(cloud, "stop", first)
    execution = start(cloud, machine, "stop-1", {"seconds": 1})
    eventually(lambda: task_started(cloud, execution))
    stepfunctions = cloud.client("stepfunctions")

    stopped = stepfunctions.stop_execution(executionArn=execution, error="Cancelled", cause="the probe stopped it")
    described = stepfunctions.describe_execution(executionArn=execution)
    history = stepfunctions.get_execution_history(executionArn=execution)["events"]

    assert "stopDate" in stopped
    assert (described["status"], described["error"], described["cause"]) == (
        "ABORTED",
        "Cancelled",
        "the probe stopped it",
    )
    assert described["stopDate"] == stopped["stopDate"]
    assert history[-1]["type"] == "ExecutionAborted"
    assert history[-1]["executionAbortedEventDetails"] == {"error": "Cancelled", "cause": "the probe stopped it"}
    eventually(lambda: "finished" if invocations(logs, "stop-first") else None)
    time.sleep(1.5)  # the first function has returned by now
    assert stepfunctions.describe_execution(executionArn=execution)["status"] == "ABORTED"
    assert stepfunctions.get_execution_history(executionArn=execution)["events"] == history
    assert invocations(logs, "stop-second") == 0


def test_a_task_failing_after_the_stop_leaves_the_execution_aborted(cloud):
    """API_StopExecution.html: a stopped execution is ABORTED; the failure of the task that was in flight, which
    would have been caught (States.ALL), does not reopen it or turn it into FAILED."""
    failing = function(cloud, "stop-fails-first", "slow_then_fails")
    task = invoke_task(failing, **catch_all())
    machine = state_machine(cloud, "stop-fails", {"Task": task, **CAUGHT}, "Task")
    execution = start(cloud, machine, "stop-fails-1", {"seconds": 0.5})
    eventually(lambda: task_started(cloud, execution))

    cloud.client("stepfunctions").stop_execution(executionArn=execution)
    time.sleep(1.5)  # the function has failed by now
    described, events = finish(cloud, execution)

    assert described["status"] == "ABORTED"
    assert events[-1]["type"] == "ExecutionAborted"
    assert "Caught" not in entered(events)


def test_stop_execution_ends_a_retry_wait(cloud):
    """API_StopExecution.html: StopExecution stops the execution at once, also while a Retrier waits out its
    interval (here 100 s: 100,000 s at this cloud's wait scale)."""
    failing = function(cloud, "stop-retry-fails", "fails")
    task = invoke_task(failing, Retry=[{"ErrorEquals": ["Boom"], "IntervalSeconds": 100_000}], End=True)
    machine = state_machine(cloud, "stop-retry", {"Task": task}, "Task")
    execution = start(cloud, machine, "stop-retry-1", {})
    eventually(lambda: any(event["type"] == "TaskFailed" for event in finish_history(cloud, execution)))

    started = time.monotonic()
    cloud.client("stepfunctions").stop_execution(executionArn=execution)
    described, events = finish(cloud, execution)

    assert time.monotonic() - started < 2
    assert described["status"] == "ABORTED"
    assert events[-1]["type"] == "ExecutionAborted"


def finish_history(cloud, execution_arn: str) -> list[dict]:
    return cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]


def test_the_state_machine_timeout_ends_the_execution_with_a_task_in_flight(cloud, logs):
    """https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html: TimeoutSeconds is "the
    maximum number of seconds an execution of the state machine can run. If it runs longer than the specified
    time, the execution fails with a States.Timeout Error name." It ends TIMED_OUT, with ExecutionTimedOut last in
    its history, without waiting for the task in flight. TimeoutSeconds 2 at this cloud's timeout scale is 1 s."""
    first = function(cloud, "timeout-first", "slow")
    machine = two_tasks(cloud, "timeout", first, TimeoutSeconds=2)

    started = time.monotonic()
    described, events = run(cloud, machine, "timeout-1", {"seconds": 3})
    elapsed = time.monotonic() - started

    assert described["status"] == "TIMED_OUT"
    assert 0.9 < elapsed < 1.8  # scaled (1 s), not 2 s, nor the task's 3 s
    assert events[-1]["type"] == "ExecutionTimedOut"
    time.sleep(2.5)  # the first function has returned by now
    assert finish_history(cloud, described["executionArn"]) == events
    assert invocations(logs, "timeout-second") == 0


def test_time_out_execution_takes_the_timeout_path_early(cloud):
    """statemachine-structure.html (TimeoutSeconds): the test aid ``LocalCloud.time_out_execution`` ends an
    execution as its timeout would: TIMED_OUT, ExecutionTimedOut last, here while a task waits for its token,
    which it never gets (https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token)."""
    echo = function(cloud, "token-echo", "counted")
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": echo, "Payload": {"token.$": "$$.Task.Token"}},
        "End": True,
    }
    machine = state_machine(cloud, "token", {"Task": task}, "Task")
    execution = start(cloud, machine, "token-1", {})
    eventually(lambda: task_started(cloud, execution))

    cloud.time_out_execution(execution)
    stepfunctions = cloud.client("stepfunctions")

    assert stepfunctions.describe_execution(executionArn=execution)["status"] == "TIMED_OUT"
    assert finish_history(cloud, execution)[-1]["type"] == "ExecutionTimedOut"
    with pytest.raises(ValueError, match="not running"):
        cloud.time_out_execution(execution)


def queue(cloud, name: str) -> tuple[str, str]:
    """A new SQS queue: its URL and ARN."""
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def messages(cloud, queue_url: str, wait: float = 0) -> list[dict]:
    """Every message on the queue now (after ``wait`` seconds of long polling if there is none yet)."""
    response = cloud.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=int(wait)
    )
    return response.get("Messages", [])


def invoke_async(cloud, function_name: str, event: dict) -> None:
    response = cloud.client("lambda").invoke(
        FunctionName=function_name, InvocationType="Event", Payload=json.dumps(event)
    )
    assert response["StatusCode"] == 202


def test_an_asynchronous_invocation_is_retried_twice_then_sent_to_the_dead_letter_queue(cloud, logs):
    """https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html: "If the function returns an error, Lambda
    attempts to run it two more times, with a one-minute wait between the first two attempts, and two minutes between
    the second and third attempts. [...] If all three attempts fail, Lambda sends the event to a dead-letter queue, if
    it's configured." https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html: the message
    is the event as it came, with the attributes RequestID, ErrorCode and ErrorMessage."""
    dead_letters, dead_letter_arn = queue(cloud, "always-fails-dlq")
    function(cloud, "always-fails", "fails", DeadLetterConfig={"TargetArn": dead_letter_arn})
    configuration = cloud.client("lambda").get_function_configuration(FunctionName="always-fails")
    assert configuration["DeadLetterConfig"] == {"TargetArn": dead_letter_arn}

    invoke_async(cloud, "always-fails", {"order": 7})

    [message] = eventually(lambda: messages(cloud, dead_letters))
    assert json.loads(message["Body"]) == {"order": 7}
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert set(attributes) == {"RequestID", "ErrorCode", "ErrorMessage"}
    assert attributes["ErrorMessage"] == "always"
    assert invocations(logs, "always-fails") == 3


def test_an_asynchronous_invocation_that_succeeds_on_retry_is_not_dead_lettered(cloud, logs, tmp_path):
    """invocation-async.html: a function error is retried; an attempt that succeeds ends the invocation, and only
    "if all three attempts fail" does the event go to the dead-letter queue."""
    dead_letters, dead_letter_arn = queue(cloud, "fails-once-dlq")
    function(cloud, "fails-once", "fails_once", DeadLetterConfig={"TargetArn": dead_letter_arn})

    invoke_async(cloud, "fails-once", {"marker": str(tmp_path / "attempted")})

    eventually(lambda: invocations(logs, "fails-once") == 2)
    time.sleep(0.5)  # the third attempt would have come after 0.12 s
    assert invocations(logs, "fails-once") == 2
    assert messages(cloud, dead_letters) == []


def test_execution_status_changes_reach_eventbridge_rules_and_their_lambda_targets(cloud, logs):
    """https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html: Step Functions emits "Step Functions
    Execution Status Change" events (source aws.states) whose detail "provides the same information as the
    DescribeExecution API"; an EventBridge rule can "call AWS Lambda functions" on them, which EventBridge invokes
    asynchronously (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html). A rule matching status
    FAILED sees the failed execution and not the one that succeeded; "A disabled rule won't match any events"
    (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_DisableRule.html)."""
    states = {
        "Decide": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Fail"}],
            "Default": "Done",
        },
        "Fail": {"Type": "Fail", "Error": "Refused", "Cause": "the probe said so"},
        "Done": {"Type": "Succeed"},
    }
    machine = state_machine(cloud, "watched", states, "Decide")
    pattern = {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED"], "stateMachineArn": [machine]},
    }
    events = cloud.client("events")
    for rule, state in (("on-failure", "ENABLED"), ("on-failure-disabled", "DISABLED")):
        target = function(cloud, f"{rule}-target", "counted")
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State=state)
        events.put_targets(Rule=rule, Targets=[{"Id": "function", "Arn": target}])

    failed, _ = run(cloud, machine, "watched-fails", {"fail": True})
    run(cloud, machine, "watched-succeeds", {"fail": False})

    eventually(lambda: invocations(logs, "on-failure-target"))
    time.sleep(0.5)
    log = (logs / "on-failure-target.log").read_text()
    [event] = [json.loads(line.removeprefix("invoked ")) for line in log.splitlines() if line.startswith("invoked ")]
    assert (event["source"], event["detail-type"]) == ("aws.states", "Step Functions Execution Status Change")
    assert event["resources"] == [failed["executionArn"]]
    detail = event["detail"]
    assert {key: detail[key] for key in ("executionArn", "stateMachineArn", "name", "status")} == {
        "executionArn": failed["executionArn"],
        "stateMachineArn": machine,
        "name": "watched-fails",
        "status": "FAILED",
    }
    assert (detail["error"], detail["cause"], detail["output"]) == ("Refused", "the probe said so", None)
    assert json.loads(detail["input"]) == {"fail": True}
    assert detail["startDate"] == int(failed["startDate"].timestamp() * 1000)
    assert detail["stopDate"] == int(failed["stopDate"].timestamp() * 1000)
    assert invocations(logs, "on-failure-disabled-target") == 0


def test_an_event_eventbridge_cannot_deliver_goes_to_the_targets_dead_letter_queue(cloud):
    """https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html: "for errors that result from missing
    permissions to a target, or a target resource that no longer exists, [...] Rather than retrying, EventBridge
    sends these events directly to the DLQ", with the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE and
    RETRY_ATTEMPTS."""
    dead_letters, dead_letter_arn = queue(cloud, "undelivered")
    missing = "arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
    events = cloud.client("events")
    rule = events.put_rule(Name="to-nowhere", EventPattern=json.dumps({"source": ["probe.nowhere"]}))["RuleArn"]
    events.put_targets(
        Rule="to-nowhere",
        Targets=[
            {
                "Id": "gone",
                "Arn": missing,
                "RetryPolicy": {"MaximumRetryAttempts": 3},
                "DeadLetterConfig": {"Arn": dead_letter_arn},
            }
        ],
    )

    events.put_events(Entries=[{"Source": "probe.nowhere", "DetailType": "probe", "Detail": '{"n": 1}'}])

    [message] = eventually(lambda: messages(cloud, dead_letters))
    assert json.loads(message["Body"])["detail"] == {"n": 1}
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert {key: attributes[key] for key in ("RULE_ARN", "TARGET_ARN", "ERROR_CODE", "RETRY_ATTEMPTS")} == {
        "RULE_ARN": rule,
        "TARGET_ARN": missing,
        "ERROR_CODE": "NO_RESOURCE",
        "RETRY_ATTEMPTS": "0",
    }
    assert "EXHAUSTED_RETRY_CONDITION" not in attributes


def test_an_sqs_outage_fails_send_message_tasks_until_it_ends(cloud):
    """https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html: "ServiceUnavailable:
    The request has failed due to a temporary failure of the server", HTTP 503. A sendMessage task's Retrier and
    Catcher handle it like any task error (concepts-error-handling.html): with ``fail_sends(queue, 2)`` both attempts
    fail and the Catcher runs; the count spent, sends go through again."""
    url, _ = queue(cloud, "outage")
    send = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": url, "MessageBody.$": "$"},
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1, "IntervalSeconds": 1}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "QueueDown"}],
        "End": True,
    }
    machine = state_machine(
        cloud, "outage", {"Send": send, "QueueDown": {"Type": "Fail", "Error": "QueueDown"}}, "Send"
    )

    cloud.fail_sends(url, 2)
    during, events = run(cloud, machine, "outage-1", {"n": 1})
    after, _ = run(cloud, machine, "outage-2", {"n": 2})

    assert (during["status"], during["error"]) == ("FAILED", "QueueDown")
    assert [event["type"] for event in events].count("TaskFailed") == 2
    assert after["status"] == "SUCCEEDED"
    assert [json.loads(message["Body"]) for message in messages(cloud, url)] == [{"n": 2}]


def test_fail_sends_answers_with_a_server_error_until_cleared(cloud):
    """CommonErrors.html: ServiceUnavailable, HTTP status code 503. ``clear_faults`` ends the outage early."""
    url, _ = queue(cloud, "outage-direct")
    sqs = boto3.client(
        "sqs",
        endpoint_url=cloud.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}),
    )

    cloud.fail_sends(url, 5)
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=url, MessageBody="lost")
    cloud.clear_faults()
    sqs.send_message(QueueUrl=url, MessageBody="kept")

    assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert [message["Body"] for message in messages(cloud, url)] == ["kept"]


# DynamoDB transaction conflicts. A probe's transaction stays in progress this long: far longer than the requests
# made meanwhile take, even on a busy machine (4 test workers on 2 cores once took longer than 1 s).
PROBE_WINDOW_SECONDS = 2.0


@pytest.fixture
def items(cloud, request) -> Iterator[str]:
    """A fresh table keyed by ``pk``, with the local cloud's transactions in progress for a second each."""
    name = request.node.name[:200]
    cloud.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    window, cloud.transaction_window = cloud.transaction_window, PROBE_WINDOW_SECONDS
    yield name
    cloud.transaction_window = window


def item(pk: str, value: str) -> dict:
    return {"pk": {"S": pk}, "value": {"S": value}}


def value_of(cloud, table: str, pk: str) -> str | None:
    found = cloud.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)
    return found["Item"]["value"]["S"] if "Item" in found else None


@contextmanager
def transaction_in_progress(cloud, table: str, pks: list[str]) -> Iterator[float]:
    """A TransactWriteItems putting ``pks`` (value "winner"), in progress while the block runs; yields the moment its
    writes showed. It must succeed, and answer only once its window has passed."""
    dynamodb = cloud.client("dynamodb")
    answered: list[Any] = []

    def transact() -> None:
        try:
            answered.append(
                dynamodb.transact_write_items(
                    TransactItems=[{"Put": {"TableName": table, "Item": item(pk, "winner")}} for pk in pks]
                )
            )
        except ClientError as error:
            answered.append(error)

    winner = threading.Thread(target=transact)
    sent = time.monotonic()  # the window begins after this, when the transaction is applied
    winner.start()
    eventually(lambda: value_of(cloud, table, pks[0]) == "winner")  # applied: a GetItem may see it at once
    applied = time.monotonic()  # the window began before this (later, on a busy machine, than it began)
    yield applied
    assert time.monotonic() - applied < PROBE_WINDOW_SECONDS, "too slow to meet the transaction in progress"
    winner.join()
    assert not isinstance(answered[0], ClientError), answered[0]
    assert time.monotonic() - sent >= PROBE_WINDOW_SECONDS  # it answered only when its window ended


def test_a_transaction_meeting_one_in_progress_is_cancelled_with_transaction_conflict_and_writes_nothing(cloud, items):
    """https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling:
    a conflict occurs when "an item within a TransactWriteItems request is part of another ongoing
    TransactWriteItems request", and "if any item-level request within TransactWriteItems [...] is rejected, the
    request fails with a TransactionCanceledException". API_TransactWriteItems.html (TransactionCanceledException):
    reasons "are ordered in the order of requested items, if an item has no error it will have None code and Null
    message"; "Transaction Conflict: Code: TransactionConflict, Message: Transaction is ongoing for the item"; HTTP
    400. Cancelled, it writes nothing; the transaction in progress applies entirely. botocore retries neither
    (data/_retry.json, retries/standard.py): the client answers on its first attempt. A GetItem meanwhile
    succeeds ("both operations can succeed")."""
    dynamodb = cloud.client("dynamodb")
    dynamodb.put_item(TableName=items, Item=item("seat", "before"))
    conflicts = cloud.transaction_conflicts().get("TransactWriteItems", 0)

    with transaction_in_progress(cloud, items, ["seat", "other"]):
        with pytest.raises(ClientError) as cancelled:
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": items, "Item": item("mine", "loser")}},
                    {
                        "Update": {
                            "TableName": items,
                            "Key": {"pk": {"S": "seat"}},
                            "UpdateExpression": "SET #value = :loser",
                            "ExpressionAttributeNames": {"#value": "value"},
                            "ExpressionAttributeValues": {":loser": {"S": "loser"}},
                        }
                    },
                ]
            )
        assert value_of(cloud, items, "seat") == "winner"

    response = cancelled.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    assert response["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]"
    )
    assert response["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
    ]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert [value_of(cloud, items, pk) for pk in ("seat", "other", "mine")] == ["winner", "winner", None]
    assert cloud.transaction_conflicts()["TransactWriteItems"] == conflicts + 1


def test_a_single_item_write_to_an_item_a_transaction_holds_fails_with_transaction_conflict_exception(cloud, items):
    """transaction-apis.html#transaction-conflict-handling: "A PutItem, UpdateItem, or DeleteItem request for an item
    conflicts with an ongoing TransactWriteItems request that includes the same item", and then "the request
    fails with a TransactionConflictException" (API_PutItem.html: "Operation was rejected because there is an
    ongoing transaction for the item", HTTP 400), writing nothing; botocore does not retry it. Other items, and
    the same item once the transaction has answered, take writes as usual."""
    dynamodb = cloud.client("dynamodb")
    key = {"pk": {"S": "seat"}}
    update = {"UpdateExpression": "SET #value = :late", "ExpressionAttributeNames": {"#value": "value"}}
    writes = {
        "PutItem": lambda: dynamodb.put_item(TableName=items, Item=item("seat", "late")),
        "UpdateItem": lambda: dynamodb.update_item(
            TableName=items, Key=key, ExpressionAttributeValues={":late": {"S": "late"}}, **update
        ),
        "DeleteItem": lambda: dynamodb.delete_item(TableName=items, Key=key),
    }
    conflicts = cloud.transaction_conflicts()

    refused = {}
    with transaction_in_progress(cloud, items, ["seat"]):
        for operation, write in writes.items():
            with pytest.raises(ClientError) as error:
                write()
            refused[operation] = error.value.response
        dynamodb.put_item(TableName=items, Item=item("elsewhere", "meanwhile"))

    for operation, response in refused.items():
        assert response["Error"]["Code"] == "TransactionConflictException", operation
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert response["ResponseMetadata"]["RetryAttempts"] == 0
        assert cloud.transaction_conflicts()[operation] == conflicts.get(operation, 0) + 1
    assert value_of(cloud, items, "seat") == "winner"
    assert value_of(cloud, items, "elsewhere") == "meanwhile"
    writes["UpdateItem"]()
    assert value_of(cloud, items, "seat") == "late"


def test_an_expression_dynamodb_cannot_parse_is_refused_with_validation_exception(cloud, items):
    """https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html: ValidationException, "the
    input fails to satisfy the constraints specified by an AWS service", HTTP 400; DynamoDB names it "Invalid
    ConditionExpression: Syntax error; ..." for a condition it cannot parse, and "Invalid FilterExpression: ..."
    for a Query's filter (Expressions.ConditionExpressions.html gives the syntax both follow). A client error:
    botocore does not retry it, and nothing is written. moto's server answered 500 (retried, as if DynamoDB were
    failing)."""
    dynamodb = cloud.client("dynamodb")
    dynamodb.put_item(TableName=items, Item=item("seat", "before"))
    key = {"pk": {"S": "seat"}}
    malformed = {"ConditionExpression": "#value >> :before", "ExpressionAttributeNames": {"#value": "value"}}
    before = {":before": {"S": "before"}}
    writes = {
        "PutItem": lambda: dynamodb.put_item(
            TableName=items, Item=item("seat", "put"), ExpressionAttributeValues=before, **malformed
        ),
        "UpdateItem": lambda: dynamodb.update_item(
            TableName=items,
            Key=key,
            UpdateExpression="SET #value = :after",
            ExpressionAttributeValues={**before, ":after": {"S": "updated"}},
            **malformed,
        ),
        "DeleteItem": lambda: dynamodb.delete_item(
            TableName=items, Key=key, ExpressionAttributeValues=before, **malformed
        ),
        "TransactWriteItems": lambda: dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": items, "Item": item("other", "transacted")}},
                {"ConditionCheck": {"TableName": items, "Key": key, "ExpressionAttributeValues": before, **malformed}},
            ]
        ),
        "Query": lambda: dynamodb.query(
            TableName=items,
            KeyConditionExpression="pk = :pk",
            FilterExpression=malformed["ConditionExpression"],
            ExpressionAttributeNames=malformed["ExpressionAttributeNames"],
            ExpressionAttributeValues={**before, ":pk": key["pk"]},
        ),
    }
    for operation, write in writes.items():
        with pytest.raises(ClientError) as refused:
            write()
        response = refused.value.response
        expression = "FilterExpression" if operation == "Query" else "ConditionExpression"
        assert response["Error"]["Code"] == "ValidationException", operation
        assert response["Error"]["Message"].startswith(f"Invalid {expression}: Syntax error; "), operation
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert value_of(cloud, items, "seat") == "before"
    assert value_of(cloud, items, "other") is None
    well_formed = malformed | {"ConditionExpression": "#value = :before"}  # evaluated as usual
    dynamodb.put_item(TableName=items, Item=item("seat", "put"), ExpressionAttributeValues=before, **well_formed)
    assert value_of(cloud, items, "seat") == "put"


def bus_to_queue(cloud, name: str, pattern: dict, **target) -> tuple[str, str]:
    """A new event bus with one rule sending what matches ``pattern`` to a new queue: the bus's ARN, the queue's URL."""
    events = cloud.client("events")
    bus = events.create_event_bus(Name=name)["EventBusArn"]
    url, arn = queue(cloud, f"{name}-queue")
    events.put_rule(Name=f"{name}-rule", EventBusName=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=f"{name}-rule", EventBusName=name, Targets=[{"Id": "queue", "Arn": arn, **target}])
    return bus, url


def test_an_asynchronous_invocation_whose_attempts_all_fail_sends_its_record_to_the_on_failure_bus(cloud, logs):
    """https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html: with an EventBridge bus as
    on-failure destination, Lambda sends it an invocation record (source "lambda", detail-type "Lambda Function
    Invocation Result - Failure") holding the request (requestPayload), the error (responsePayload) and, in
    requestContext, the function's ARN, the condition RetriesExhausted and approximateInvokeCount."""
    pattern = {"source": ["lambda"], "detail-type": ["Lambda Function Invocation Result - Failure"]}
    bus, records = bus_to_queue(cloud, "failures", pattern)
    arn = function(cloud, "fails-to-bus", "fails")
    cloud.client("lambda").put_function_event_invoke_config(
        FunctionName="fails-to-bus", DestinationConfig={"OnFailure": {"Destination": bus}}
    )

    invoke_async(cloud, "fails-to-bus", {"order": 8})

    [message] = eventually(lambda: messages(cloud, records))
    detail = json.loads(message["Body"])["detail"]
    assert detail["requestPayload"] == {"order": 8}
    assert (detail["responsePayload"]["errorType"], detail["responsePayload"]["errorMessage"]) == ("Boom", "always")
    context = detail["requestContext"]
    assert (context["functionArn"], context["condition"], context["approximateInvokeCount"]) == (
        f"{arn}:$LATEST",
        "RetriesExhausted",
        3,
    )
    assert invocations(logs, "fails-to-bus") == 3


def test_a_stack_puts_rules_on_its_own_bus_with_input_paths_and_deploys_event_invoke_configs(cloud):
    """https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-events-eventbus.html: Ref
    of an event bus "returns the name of the event bus", which a rule's EventBusName takes;
    AWS::Lambda::EventInvokeConfig configures a function's destinations; an SQS target's InputPath sends only what
    it selects
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html)."""
    function(cloud, "configured-by-stack", "counted")
    url, arn = queue(cloud, "selected-parts")
    template = {
        "Resources": {
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "stack-bus"}},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventBusName": {"Ref": "Bus"},
                    "EventPattern": {"source": ["probe.stack"]},
                    "Targets": [{"Id": "queue", "Arn": arn, "InputPath": "$.detail.inner"}],
                },
            },
            "Config": {
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": "configured-by-stack",
                    "Qualifier": "$LATEST",
                    "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Bus", "Arn"]}}},
                },
            },
        }
    }
    cloudformation = cloud.client("cloudformation")
    cloudformation.create_stack(StackName="bus-probe", TemplateBody=json.dumps(template))
    eventually(
        lambda: cloudformation.describe_stacks(StackName="bus-probe")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    )

    config = cloud.client("lambda").get_function_event_invoke_config(FunctionName="configured-by-stack")
    assert config["DestinationConfig"]["OnFailure"]["Destination"].endswith(":event-bus/stack-bus")
    detail = {"inner": {"kept": 1}, "dropped": 2}
    cloud.client("events").put_events(
        Entries=[
            {"EventBusName": "stack-bus", "Source": "probe.stack", "DetailType": "probe", "Detail": json.dumps(detail)}
        ]
    )
    [message] = eventually(lambda: messages(cloud, url))
    assert json.loads(message["Body"]) == {"kept": 1}


def test_each_parse_of_a_definition_keeps_its_own_query_language_scopes(cloud):
    """https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: an account may have up to
    1,000,000 open executions per Region, started at any rate up to StartExecution's throttle, and nothing in
    one execution depends on another's. moto's ASL preprocessor kept its stack of QueryLanguage
    scopes in a class attribute, one list for all parses at once: a parse that found the list not empty could read
    it after another parse had emptied it (IndexError, and the execution never started: ``python -m bench`` met
    it with two executions of an uncached definition at once), or inherit another definition's query language."""
    first, second = Preprocessor(), Preprocessor()
    first._query_language_per_scope.append(QueryLanguage())

    assert second._query_language_per_scope == []


def test_one_connection_serves_request_after_request(cloud):
    """https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/node-reusing-connections.html: the SDKs
    reuse a TCP connection to an AWS endpoint from request to request, since for operations as short as a DynamoDB
    query setting one up can cost more than the operation. werkzeug's server, which moto runs, closed every
    connection after its response. Here it stays open, also after a request whose body the app never read (a
    path no API serves): that body does not spill into the next request."""
    cloud.client("dynamodb").create_table(
        TableName="kept-open",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    endpoint = urllib.parse.urlsplit(cloud.endpoint_url)
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
    list_tables = {
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0",
        # not checked; its scope names the service
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/dynamodb/aws4_request, Signature=x",
    }
    try:
        connection.request("POST", "/_aws/execute-api/no-such-api/prod/x", body=b"x" * 100_000)
        connection.getresponse().read()
        first_socket = connection.sock
        for _ in range(3):
            connection.request("POST", "/", body=b"{}", headers=list_tables)
            response = connection.getresponse()
            assert (response.status, response.getheader("Connection")) == (200, None)
            assert "kept-open" in json.loads(response.read())["TableNames"]
            assert connection.sock is first_socket  # http.client reconnects silently where the server closed
    finally:
        connection.close()
