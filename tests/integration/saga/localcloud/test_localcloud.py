"""The local cloud deploys a tiny CDK app as `cdk deploy` would and runs its real Lambda code and state machine."""

import glob
import json
import os
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from saga.deployment import session_for
from saga.localcloud import LocalCloud, LocalCloudError
from saga.localcloud.interpreters import interpreter_for

STACK = "LocalCloudProbe"
WAIT_SCALE = 0.1
KEEP_WARM = 3  # seconds a worker stays warm with nothing to do

HANDLER = """
import os
import sys
import time

import boto3

INVOCATIONS = 0
print(f"initialized in process {os.getpid()}")


class SoldOut(Exception):
    pass


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    print(f"booking {event['id']}")
    if event.get("sold_out"):
        raise SoldOut(f"no seats left for {event['id']}")
    client = boto3.client("dynamodb")
    item = {"pk": {"S": event["id"]}, "who": {"S": os.environ["WHO"]}}
    client.put_item(TableName=os.environ["TABLE_NAME"], Item=item)
    leaked = os.environ.get("DEVELOPER_SECRET")
    settings = [client.meta.endpoint_url, boto3.DEFAULT_SESSION.get_credentials().access_key]
    answer = {"id": event["id"], "who": os.environ["WHO"], "invocations": INVOCATIONS, "leaked": leaked}
    return {**answer, "client": settings}


def slow(event, context):
    if "exit" in event:
        sys.exit(event["exit"])
    time.sleep(event["seconds"])
    return "finished"


def version(event, context):
    import platform

    return platform.python_version()
"""


def _synthesize(outdir: Path, code_dir: Path) -> None:
    """A table, three functions on the same code with different settings, a slow one, one that reports its
    Python, and a
    state machine whose task catches SoldOut into a Fail state."""
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, STACK)
    table = dynamodb.Table(
        stack, "Table", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )

    def function(name: str, handler: str, **settings) -> lambda_.Function:
        return lambda_.Function(
            stack,
            name,
            runtime=lambda_.Runtime.PYTHON_3_13,
            code=lambda_.Code.from_asset(str(code_dir)),
            handler=handler,
            **settings,
        )

    writer = function("Writer", "h.handler", environment={"TABLE_NAME": table.table_name, "WHO": "writer"})
    other = function("Other", "h.handler", environment={"TABLE_NAME": table.table_name, "WHO": "other"})
    warmed = function("Warmed", "h.handler", environment={"TABLE_NAME": table.table_name, "WHO": "warmed"})
    slow = function("Slow", "h.slow", timeout=cdk.Duration.seconds(1))
    version = function("Version", "h.version")
    for fn in (writer, other, warmed):
        table.grant_write_data(fn)

    book = tasks.LambdaInvoke(stack, "Book", lambda_function=writer, payload_response_only=True)
    book.add_catch(sfn.Fail(stack, "BookingFailed", error="BookingFailed"), errors=["SoldOut"], result_path="$.error")
    machine = sfn.StateMachine(
        stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(book.next(sfn.Succeed(stack, "Booked")))
    )
    outputs = {
        "TableName": table.table_name,
        "WriterArn": writer.function_arn,
        "OtherArn": other.function_arn,
        "WarmedArn": warmed.function_arn,
        "SlowArn": slow.function_arn,
        "VersionArn": version.function_arn,
        "StateMachineArn": machine.state_machine_arn,
    }
    for name, value in outputs.items():
        cdk.CfnOutput(stack, name, value=value)
    app.synth()


@pytest.fixture(scope="module")
def assembly(tmp_path_factory) -> Path:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    code_dir = tmp_path_factory.mktemp("code")
    (code_dir / "h.py").write_text(textwrap.dedent(HANDLER))
    outdir = tmp_path_factory.mktemp("cdk.out")
    _synthesize(outdir, code_dir)
    return outdir


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def python313():
    """Python 3.13 on PATH where this machine has one installed but not on PATH (pyenv keeps every version it
    installed under ~/.pyenv/versions), so the local cloud's match of the declared runtime is exercised."""
    path = os.environ["PATH"]
    installed = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13.*/bin")))
    os.environ["PATH"] = os.pathsep.join([*installed[-1:], path])
    interpreter_for.cache_clear()
    yield interpreter_for("python3.13")
    os.environ["PATH"] = path
    interpreter_for.cache_clear()


@pytest.fixture(scope="module")
def cloud(assembly, logs, python313):
    with LocalCloud(wait_scale=WAIT_SCALE, log_dir=logs, keep_warm=KEEP_WARM) as cloud:
        cloud.outputs = cloud.deploy(assembly, STACK)
        yield cloud


def invoke(cloud, arn: str, event: dict) -> tuple[dict | str, str | None]:
    response = cloud.client("lambda").invoke(FunctionName=arn, Payload=json.dumps(event))
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def runtime_failure(error_type: str, message: str) -> tuple[dict, str]:
    """What ``invoke`` returns when the runtime, not the handler's code, failed: Lambda's error document, with no
    stack trace, and the function error ``Unhandled``."""
    return {"errorType": error_type, "errorMessage": message, "stackTrace": []}, "Unhandled"


def run(cloud, name: str, event: dict) -> tuple[dict, list[dict]]:
    sfn = cloud.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=cloud.outputs["StateMachineArn"], name=name, input=json.dumps(event))[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.05)
    return execution, sfn.get_execution_history(executionArn=arn)["events"]


def test_a_function_runs_on_the_python_its_runtime_declares_where_one_is_installed(cloud, python313):
    """https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html: a function's runtime (python3.13) is the
    language version Lambda runs it on. So does the local cloud wherever python3.13 is on PATH, else it runs it
    on its own interpreter and says so."""
    assert cloud.interpreters == {python313}
    version, error = invoke(cloud, cloud.outputs["VersionArn"], {})
    assert error is None
    assert version == python313.version
    if python313.matches:
        assert version.startswith("3.13.")
        assert python313.describe() == f"Functions on python3.13 run on Python {version} ({python313.path})"
    else:
        assert python313.describe().startswith("python3.13 is not installed here: its functions run on this Python")


def test_deploy_returns_the_stack_outputs(cloud):
    assert set(cloud.outputs) == {
        "TableName",
        "WriterArn",
        "OtherArn",
        "WarmedArn",
        "SlowArn",
        "VersionArn",
        "StateMachineArn",
    }
    assert cloud.endpoint_url.startswith("http://127.0.0.1:")


def test_the_deployed_state_machine_is_the_executable_one(cloud):
    described = cloud.client("stepfunctions").describe_state_machine(stateMachineArn=cloud.outputs["StateMachineArn"])
    assert json.loads(described["definition"])["StartAt"] == "Book"


def test_the_real_handler_writes_the_item(cloud):
    execution, events = run(cloud, "books-b1", {"id": "b1"})

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["who"] == "writer"
    item = cloud.client("dynamodb").get_item(TableName=cloud.outputs["TableName"], Key={"pk": {"S": "b1"}})["Item"]
    assert item["who"] == {"S": "writer"}
    assert "LambdaFunctionSucceeded" in [event["type"] for event in events]


def test_a_handlers_clients_take_its_functions_environment(cloud):
    """The fork server reads botocore's models once for every worker; each worker's clients still take their
    endpoint and credentials from the function's environment, where DynamoDB's is the process serving it."""
    answer, error = invoke(cloud, cloud.outputs["OtherArn"], {"id": "settings-1"})
    assert error is None
    assert answer["client"] == [cloud.dynamodb_endpoint_url, "local"]


def test_the_one_endpoint_forwards_dynamodb_to_its_process(cloud):
    """The stack's tables live in DynamoDB's process; a client of the one endpoint reaches them there, and gets
    DynamoDB's answers as that process gave them, errors included."""
    table = cloud.outputs["TableName"]
    forwarded = session_for(cloud.endpoint_url).client("dynamodb", endpoint_url=cloud.endpoint_url)
    forwarded.put_item(TableName=table, Item={"pk": {"S": "forwarded-1"}, "who": {"S": "endpoint"}})
    direct = cloud.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "forwarded-1"}})
    assert direct["Item"] == {"pk": {"S": "forwarded-1"}, "who": {"S": "endpoint"}}
    with pytest.raises(ClientError) as refused:
        forwarded.put_item(
            TableName=table, Item={"pk": {"S": "forwarded-1"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The same headers as the process's own answer: one date and server line, the length kept (not chunked).
    key = {"pk": {"S": "forwarded-1"}}
    via_endpoint, from_process = (
        _headers(client.get_item(TableName=table, Key=key)) for client in (forwarded, cloud.client("dynamodb"))
    )
    assert via_endpoint.pop("date").count("GMT") == from_process.pop("date").count("GMT") == 1
    assert via_endpoint == from_process
    assert "content-length" in via_endpoint


def _headers(answer: dict) -> dict[str, str]:
    """An answer's HTTP headers, but its request id."""
    headers = dict(answer["ResponseMetadata"]["HTTPHeaders"])
    del headers["x-amzn-requestid"]
    return headers


def test_a_handler_exception_is_the_error_name_the_catch_matches(cloud):
    execution, events = run(cloud, "sold-out-b2", {"id": "b2", "sold_out": True})

    assert execution["status"] == "FAILED"
    assert execution["error"] == "BookingFailed"
    failed = next(
        event["lambdaFunctionFailedEventDetails"] for event in events if "lambdaFunctionFailedEventDetails" in event
    )
    assert failed["error"] == "SoldOut"
    assert json.loads(failed["cause"])["errorMessage"] == "no seats left for b2"
    entered = [event["stateEnteredEventDetails"]["name"] for event in events if event["type"].endswith("StateEntered")]
    assert entered == ["Book", "BookingFailed"]


def test_a_handler_exception_is_reported_as_lambda_does(cloud):
    payload, function_error = invoke(cloud, cloud.outputs["WriterArn"], {"id": "b3", "sold_out": True})

    assert function_error == "Unhandled"
    assert payload["errorType"] == "SoldOut"
    assert payload["errorMessage"] == "no seats left for b3"
    assert any("raise SoldOut" in frame for frame in payload["stackTrace"])


def test_a_wrong_function_arn_fails(cloud):
    with pytest.raises(ClientError) as raised:
        invoke(cloud, cloud.outputs["WriterArn"] + "Typo", {"id": "b4"})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_functions_do_not_see_each_others_environment(cloud, monkeypatch):
    monkeypatch.setenv("DEVELOPER_SECRET", "from the parent process")
    arns = [cloud.outputs["WriterArn"], cloud.outputs["OtherArn"]] * 6
    with ThreadPoolExecutor(max_workers=len(arns)) as pool:
        results = list(pool.map(lambda job: invoke(cloud, job[1], {"id": f"env-{job[0]}"}), enumerate(arns)))

    assert [payload["who"] for payload, _ in results] == ["writer", "other"] * 6
    assert {payload["leaked"] for payload, _ in results} == {None}


def test_workers_stay_warm_between_invocations(cloud, logs):
    first, _ = invoke(cloud, cloud.outputs["OtherArn"], {"id": "warm-1"})
    second, _ = invoke(cloud, cloud.outputs["OtherArn"], {"id": "warm-2"})

    assert second["invocations"] > first["invocations"] or second["invocations"] > 1
    log_files = {path.name: path.read_text() for path in logs.iterdir()}
    assert any("booking warm-1" in text for text in log_files.values())


def test_a_worker_nobody_invokes_is_reclaimed(cloud):
    """https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html: Lambda keeps an execution
    environment "for some time in anticipation of another function invocation", and a later invocation may find
    none and start cold. Locally a worker idle for ``keep_warm`` seconds is stopped (its memory goes back) and
    the next invocation starts cold: the module's state begins again."""
    invoke(cloud, cloud.outputs["OtherArn"], {"id": "idle-1"})
    warm, _ = invoke(cloud, cloud.outputs["OtherArn"], {"id": "idle-2"})
    assert warm["invocations"] >= 2
    time.sleep(KEEP_WARM * 2.5)
    cold, error = invoke(cloud, cloud.outputs["OtherArn"], {"id": "idle-3"})
    assert (cold["invocations"], error) == (1, None)


def test_a_warmed_function_meets_its_first_invocation_initialized(cloud, logs):
    """https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html: provisioned concurrency
    initializes execution environments before requests arrive. ``LocalCloud.warm`` starts a worker in the
    background the same way: its init (the handler module's import) runs at once, and the first invocation
    then runs in it instead of starting one."""
    arn = cloud.outputs["WarmedArn"]
    log = logs / f"{arn.rsplit(':', 1)[-1]}.log"
    cloud.warm([arn])
    deadline = time.monotonic() + 30
    while "initialized" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the warmed worker never initialized"
        time.sleep(0.05)

    payload, error = invoke(cloud, arn, {"id": "warmed-1"})

    assert (error, payload["invocations"]) == (None, 1)
    assert log.read_text().count("initialized") == 1


def test_warming_an_unknown_function_fails_clearly(cloud):
    with pytest.raises(LocalCloudError, match=r"no function .*Typo"):
        cloud.warm([cloud.outputs["WarmedArn"] + "Typo"])


def test_waiting_until_idle_waits_for_what_asynchronous_invocations_do(cloud):
    functions = cloud.client("lambda")
    slow, writer = cloud.outputs["SlowArn"], cloud.outputs["WriterArn"]
    functions.invoke(FunctionName=slow, InvocationType="Event", Payload=json.dumps({"seconds": 0.5}))
    functions.invoke(FunctionName=writer, InvocationType="Event", Payload=json.dumps({"id": "async-1"}))

    with pytest.raises(TimeoutError):
        cloud.wait_until_idle(timeout=0.1)
    cloud.wait_until_idle(timeout=30)

    key = {"pk": {"S": "async-1"}}
    item = cloud.client("dynamodb").get_item(TableName=cloud.outputs["TableName"], Key=key)["Item"]
    assert item["who"] == {"S": "writer"}


def test_a_handler_that_exits_fails_its_invocation_with_its_exit_status_and_the_next_one_runs(cloud):
    """https://docs.aws.amazon.com/lambda/latest/dg/invocation-retries.html: a function error is also "the runtime
    [...] exited with an error code", reported with the X-Amz-Function-Error header and a JSON error document;
    Lambda names it ``Runtime.ExitError``, "Runtime exited with error: exit status N", and the next invocation
    gets a new environment. Locally the exit status comes back through the fork server the worker was forked
    from."""
    answer = invoke(cloud, cloud.outputs["SlowArn"], {"exit": 3})

    assert answer == runtime_failure("Runtime.ExitError", "Runtime exited with error: exit status 3")
    assert invoke(cloud, cloud.outputs["SlowArn"], {"seconds": 0}) == ("finished", None)


def test_a_timed_out_function_is_killed_and_restarted(cloud):
    started = time.monotonic()
    answer = invoke(cloud, cloud.outputs["SlowArn"], {"seconds": 30})

    assert time.monotonic() - started < 5
    assert answer == runtime_failure("Sandbox.Timedout", "Task timed out after 1.00 seconds")
    assert invoke(cloud, cloud.outputs["SlowArn"], {"seconds": 0}) == ("finished", None)


def test_a_query_reads_its_partition_alone_in_sort_key_order_page_by_page(cloud):
    """https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Query.html: a query returns the items of
    one partition key, sorted by sort key (descending with ScanIndexForward false), a page of Limit at a time. The
    local cloud reads that partition alone, not the whole table."""
    dynamodb = cloud.client("dynamodb")
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    attributes = [{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")]
    dynamodb.create_table(
        TableName="query-probe", KeySchema=keys, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
    )
    dynamodb.create_table(
        TableName="query-probe-hash-only",
        KeySchema=keys[:1],
        AttributeDefinitions=attributes[:1],
        BillingMode="PAY_PER_REQUEST",
    )
    for partition in ("a", "b", "c"):
        dynamodb.put_item(TableName="query-probe-hash-only", Item={"pk": {"S": partition}})
        for sort_key in ("3", "1", "2", "0"):
            dynamodb.put_item(TableName="query-probe", Item={"pk": {"S": partition}, "sk": {"S": sort_key}})

    def query(table: str, partition: str, **options) -> list[list[str]]:
        pages, page = [], {"TableName": table, "KeyConditionExpression": "pk = :pk", **options}
        page["ExpressionAttributeValues"] = {":pk": {"S": partition}}
        while True:
            response = dynamodb.query(**page)
            pages.append([item["pk"]["S"] + item.get("sk", {"S": ""})["S"] for item in response["Items"]])
            if "LastEvaluatedKey" not in response:
                return pages
            page["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    assert query("query-probe", "b") == [["b0", "b1", "b2", "b3"]]
    assert query("query-probe", "b", ScanIndexForward=False, Limit=3) == [["b3", "b2", "b1"], ["b0"]]
    assert query("query-probe", "d") == [[]]
    assert query("query-probe-hash-only", "c") == [["c"]]
    assert query("query-probe-hash-only", "d") == [[]]
