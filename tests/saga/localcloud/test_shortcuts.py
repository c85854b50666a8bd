"""The local cloud's shortcuts in moto (``moto_patches.shortcuts``) answer exactly what moto answers without them,
byte for byte; and the region list moto reads at import, with one botocore session since ``saga.localcloud``
imports it, is the one botocore knows."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.cloudformation.models import Stack as CloudFormationStack
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core import responses as moto_responses
from moto.core.base_backend import AccountSpecificBackend
from moto.core.serialize import XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model, iso_8601_datetime_with_milliseconds, utcnow
from moto.dynamodb.responses import DynamoHandler
from moto.sns.models import SNSBackend
from moto.stepfunctions.responses import StepFunctionResponse

from saga.localcloud.moto_patches import shortcuts
from tests.strategies import examples

ROOT = Path(__file__).resolve().parents[3]
MOTO_REGIONS = """
import saga.localcloud, boto3
from moto.ec2.models import availability_zones_and_regions as regions
for region in regions.RegionsAndZonesBackend.regions:
    print(region.name, region.endpoint)
print("later sessions:", "boto3's" if regions.Session is boto3.Session else regions.Session)
"""


def serialize(service: str, operation: str, result: object) -> str:
    """The body moto answers ``operation`` with, for ``result``, as ``ActionResult.execute_result`` makes it."""
    service_model = get_service_model(service)
    serializer = get_serializer_class(service, service_model.protocol)(
        operation_model=service_model.operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(),
    )
    return serializer.serialize(result)["body"]


def both_ways(service: str, operation: str, result: object) -> tuple[str, str]:
    plain = serialize(service, operation, result)
    with shortcuts():
        shortcut = serialize(service, operation, result)
        again = serialize(service, operation, result)  # from what the first one remembered
    assert again == shortcut
    return plain, shortcut


def test_a_history_reads_the_same():
    now = iso_8601_datetime_with_milliseconds(utcnow())
    events = [
        {
            "id": 1,
            "previousEventId": 0,
            "timestamp": now,
            "type": "ExecutionStarted",
            "executionStartedEventDetails": {
                "input": '{"booking_id": "trip-1"}',
                "inputDetails": {"truncated": False},
                "roleArn": "arn:aws:iam::123456789012:role/saga",
            },
        },
        {
            "id": 2,
            "previousEventId": 1,
            "timestamp": now,
            "type": "TaskStateEntered",
            "stateEnteredEventDetails": {"name": "ReserveFlight", "input": "{}", "inputDetails": {"truncated": False}},
        },
        {
            "id": 3,
            "previousEventId": 2,
            "timestamp": now,
            "type": "LambdaFunctionScheduled",
            "lambdaFunctionScheduledEventDetails": {
                "resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                "input": "{}",
                "timeoutInSeconds": 10,
            },
        },
        {
            "id": 4,
            "previousEventId": 3,
            "timestamp": now,
            "type": "LambdaFunctionFailed",
            "lambdaFunctionFailedEventDetails": {"error": "SoldOut", "cause": '{"errorMessage": "sold out"}'},
        },
        {
            "id": 5,
            "previousEventId": 4,
            "timestamp": now,
            "type": "ExecutionFailed",
            "executionFailedEventDetails": {"error": "States.TaskFailed", "cause": None},
        },
    ]
    plain, shortcut = both_ways("stepfunctions", "GetExecutionHistory", {"events": events, "nextToken": None})
    assert shortcut == plain
    assert '"previousEventId": 4' in plain or '"previousEventId":4' in plain


def test_a_result_that_is_not_a_dict_reads_the_same():
    execution = SimpleNamespace(
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:saga:trip-1",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:saga",
        name="trip-1",
        status="SUCCEEDED",
        start_date=iso_8601_datetime_with_milliseconds(utcnow()),
        output='{"ok": true}',
    )
    plain, shortcut = both_ways("stepfunctions", "DescribeExecution", execution)
    assert shortcut == plain and "trip-1" in plain


SCALARS = st.one_of(
    st.builds(lambda text: {"S": text}, st.text(max_size=8)),
    st.builds(lambda number: {"N": str(number)}, st.integers()),
    st.builds(lambda flag: {"BOOL": flag}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda texts: {"SS": sorted(texts)}, st.sets(st.text(max_size=4), min_size=1, max_size=3)),
)
ATTRIBUTE_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.builds(lambda values: {"L": values}, st.lists(inner, max_size=3)),
        st.builds(lambda values: {"M": values}, st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    ),
    max_leaves=8,
)
ITEMS = st.lists(st.dictionaries(st.text(min_size=1, max_size=6), ATTRIBUTE_VALUES, min_size=1, max_size=4), max_size=4)


@settings(max_examples=examples(50), deadline=None)
@given(items=ITEMS)
def test_dynamodb_items_read_the_same(items):
    result = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
    plain, shortcut = both_ways("dynamodb", "Query", result)
    assert shortcut == plain


def test_each_response_class_lists_the_same_actions():
    listed = {
        handler: set(moto_responses.method_names_from_class(handler))
        for handler in (DynamoHandler, StepFunctionResponse)
    }
    with shortcuts():
        for handler, names in listed.items():
            assert moto_responses.method_names_from_class(handler) == names
            assert moto_responses.method_names_from_class(handler) == names  # as listed the first time
    assert {"get_item", "transact_write_items"} <= listed[DynamoHandler]


def test_moto_lists_every_region_botocore_knows_and_later_makes_its_own_sessions():
    """saga.localcloud imports moto's region list with one botocore session for its three partitions (in a new
    interpreter, where it imports moto first)."""
    listed = subprocess.run(
        [sys.executable, "-c", MOTO_REGIONS], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    session = boto3.Session()
    partitions = {"aws": ".amazonaws.com", "aws-us-gov": ".amazonaws.com", "aws-cn": ".amazonaws.com.cn"}
    botocore_knows = [
        f"{region} ec2.{region}{suffix}"
        for partition, suffix in partitions.items()
        for region in session.get_available_regions("ec2", partition_name=partition)
    ]
    assert listed == [*botocore_knows, "later sessions: boto3's"]


def test_a_backends_regions_are_listed_the_same_and_the_model_read_for_them_let_go():
    def regions() -> list[str]:
        return AccountSpecificBackend("sns", DEFAULT_ACCOUNT_ID, SNSBackend, True, None).regions

    def models_kept() -> list[tuple]:
        loads = AccountSpecificBackend.get_session()._session.get_component("data_loader")._cache
        return [key for key in loads if key[0] in ("load_service_model", "load_data_with_path") and "sns" in key[1]]

    plain = regions()
    assert models_kept()  # moto's session keeps the model it read the list from
    with shortcuts():
        shortcut = regions()
    assert shortcut == plain
    assert models_kept() == []


def test_a_template_reads_the_same(assembly):
    """The app's synthesized template (JSON) and a YAML one, with a tag moto's YAML loader resolves."""
    templates = [
        (assembly.directory / f"{assembly.stack_name}.template.json").read_text(),
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\nOutputs:\n  Url:\n    Value: !Ref Queue\n",
    ]
    plain = [CloudFormationStack.parse_template(template) for template in templates]
    with shortcuts():
        assert [CloudFormationStack.parse_template(template) for template in templates] == plain
    assert plain[1]["Outputs"]["Url"]["Value"] == {"Ref": "Queue"}


@contextmanager
def one_table() -> Iterator[Any]:
    """moto's DynamoDB in this process, with one table ``t`` keyed by the string ``pk``: a client of it."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


UPDATES = [  # (UpdateExpression, its values): what the handlers write, and the other kinds of action and operand
    ("SET started_at = if_not_exists(started_at, :now)", {":now": {"S": "2026-11-29T00:00:00Z"}}),
    ("SET available = available - :n, held = held + :n", {":n": {"N": "2"}}),
    ("ADD seen :one REMOVE gone", {":one": {"N": "1"}}),
    (
        "SET tags = list_append(if_not_exists(tags, :empty), :tag), nested.#k = :tag",
        {
            ":empty": {"L": []},
            ":tag": {"L": [{"S": "x"}]},
        },
    ),
    ("SET available = :n, held = :n, nested = :map", {":n": {"N": "10"}, ":map": {"M": {}}}),
    ("SET available = available +", {}),  # malformed: refused each time
]


def changed(value: object) -> object:
    """The same values, each number 3 more and each string longer: a parse remembered must not keep the old ones."""
    if isinstance(value, dict):
        return {
            key: str(int(item) + 3) if key == "N" else f"{item}!" if key == "S" else changed(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [changed(item) for item in value]
    return value


def updates_applied() -> list[object]:
    """``UPDATES`` applied to one item in moto's DynamoDB, then again with other values: each answer or error."""
    with one_table() as client:
        seen: list[object] = []
        for expression, values in [
            *UPDATES[-2:],
            *UPDATES,
            *((expression, changed(values)) for expression, values in UPDATES),
        ]:
            update = {"UpdateExpression": expression, "ReturnValues": "ALL_NEW"}
            if values:
                update["ExpressionAttributeValues"] = values
            if "#k" in expression:
                update["ExpressionAttributeNames"] = {"#k": "k"}
            try:
                seen.append(client.update_item(TableName="t", Key={"pk": {"S": "a"}}, **update)["Attributes"])
            except ClientError as error:
                seen.append(error.response["Error"])
        return seen


def test_update_expressions_apply_the_same():
    plain = updates_applied()
    with shortcuts():
        assert updates_applied() == plain
    assert plain[-1]["Code"] == "ValidationException"
    assert plain[-2]["available"] == {"N": "13"}  # the second values, not the first


ITEM = {"pk": {"S": "a"}, "stock": {"N": "5"}, "tag": {"S": "x"}}
CONDITIONS = [  # (ConditionExpression, its names, its values), each on ITEM: true with these values, false when changed
    ("attribute_exists(pk) AND stock >= :n", {}, {":n": {"N": "3"}}),
    ("#s > :n OR begins_with(tag, :p)", {"#s": "stock"}, {":n": {"N": "4"}, ":p": {"S": "x"}}),
    ("stock BETWEEN :lo AND :hi AND size(tag) = :one", {}, {":lo": {"N": "1"}, ":hi": {"N": "5"}, ":one": {"N": "1"}}),
    ("NOT (stock IN (:a, :b))", {}, {":a": {"N": "2"}, ":b": {"N": "3"}}),
]
MALFORMED = ("stock >> :n", {}, {":n": {"N": "1"}})


def conditions_checked() -> list[object]:
    """``CONDITIONS`` on ``ITEM`` in moto's DynamoDB, as a PutItem's and as a transaction's condition, then again with
    other values: each answer or error."""
    with one_table() as client:
        client.put_item(TableName="t", Item=ITEM)
        seen: list[object] = []
        for expression, names, values in [
            MALFORMED,
            *CONDITIONS,
            *((expression, names, changed(values)) for expression, names, values in CONDITIONS),
            MALFORMED,
        ]:
            condition = {"ConditionExpression": expression, "ExpressionAttributeValues": values}
            if names:
                condition["ExpressionAttributeNames"] = names
            writes = {
                "put_item": {"TableName": "t", "Item": ITEM, **condition},
                "transact_write_items": {
                    "TransactItems": [{"ConditionCheck": {"TableName": "t", "Key": {"pk": ITEM["pk"]}, **condition}}]
                },
            }
            for operation, request in writes.items():
                try:
                    getattr(client, operation)(**request)
                    seen.append("accepted")
                except ClientError as error:
                    seen.append(error.response["Error"]["Code"])
                except ValueError as error:  # how moto refuses a text it cannot parse, in process
                    seen.append(f"ValueError: {error}")
        return seen


def test_conditions_decide_the_same():
    plain = conditions_checked()
    with shortcuts():
        assert conditions_checked() == plain
    assert plain[:2] == plain[-2:] == ["ValueError: Bad comparison stock > >"] * 2
    assert plain[2:10] == ["accepted"] * 8
    assert plain[10:18] == ["ConditionalCheckFailedException", "TransactionCanceledException"] * 4
