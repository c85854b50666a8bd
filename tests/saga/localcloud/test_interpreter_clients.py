"""The interpreter's clients, answered in the local cloud's process (``moto_patches.applied``, without signing or
sending a request), answer as a boto3 client under ``mock_aws`` does, through botocore's whole send and parse:
the same output, and the same errors with their modelled fields, as AWS documents them:

- Lambda's Invoke of an unknown function, ResourceNotFoundException with HTTP 404:
  https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors
- SQS's SendMessage to a queue that does not exist, QueueDoesNotExist:
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html#API_SendMessage_Errors
- DynamoDB's refused condition, ConditionalCheckFailedException, carrying the item it met when
  ReturnValuesOnConditionCheckFailure is ALL_OLD:
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html#DDB-PutItem-request-ReturnValuesOnConditionCheckFailure

The clients are unsigned: the local cloud evaluates no IAM (the README's list of what it cannot show), so no
signature is checked either way."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

from saga.localcloud.moto_patches import SendFaults, TransactionHolds, applied

REGION = "us-east-1"
MISSING_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:missing"
MISSING_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/missing"


def no_lambdas(function: Any, body: Any, headers: Any, response_headers: dict) -> bytes:
    raise AssertionError("no function is invoked here")


@contextmanager
def interpreter_clients() -> Iterator[Callable[[str], Any]]:
    """The interpreter's client for a service, as the local cloud patches it, in a moto reset on leaving."""
    with (
        mock_aws(),
        ThreadPoolExecutor() as background,
        applied(no_lambdas, 1, 1, SendFaults(), TransactionHolds(0), background),
    ):
        yield lambda service: boto_client_for(REGION, service)


def error_of(call: Callable[[], Any]) -> tuple[str, dict]:
    """The error class a call raised, and its response without what differs from one request to the next or
    comes from botocore's retry handler (the interpreter's clients make one attempt, and no HTTP request)."""
    with pytest.raises(ClientError) as raised:
        call()
    response = dict(raised.value.response)
    response["ResponseMetadata"] = {"HTTPStatusCode": response["ResponseMetadata"]["HTTPStatusCode"]}
    return type(raised.value).__name__, response


def put_twice(client: Any) -> None:
    """A conditional PutItem refused, whose error carries the item it met (a modelled field of the error)."""
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for _ in range(2):
        client.put_item(
            TableName="t",
            Item={"pk": {"S": "a"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


CALLS = {
    "Lambda's 404": ("lambda", lambda client: client.invoke(FunctionName=MISSING_FUNCTION, Payload=b"{}")),
    "SQS's error with its query error code": (
        "sqs",
        lambda client: client.send_message(QueueUrl=MISSING_QUEUE, MessageBody="x"),
    ),
    "DynamoDB's error with the item it met": ("dynamodb", put_twice),
}


@pytest.mark.parametrize("name", CALLS)
def test_an_error_is_raised_as_botocore_raises_it(name):
    service, call = CALLS[name]
    with mock_aws():
        plain = error_of(lambda: call(boto3.client(service, region_name=REGION)))
    with interpreter_clients() as client:
        assert error_of(lambda: call(client(service))) == plain
    assert plain[1]["Error"]["Code"] in (
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "ConditionalCheckFailedException",
    )
    assert service != "dynamodb" or plain[1]["Item"] == {"pk": {"S": "a"}}


def test_an_answer_is_parsed_as_botocore_parses_it():
    def sent(client: Any) -> dict:
        queue_url = client.create_queue(QueueName="q")["QueueUrl"]
        answer = client.send_message(QueueUrl=queue_url, MessageBody="a message")
        messages = client.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"])["Messages"]
        return {"md5": answer["MD5OfMessageBody"], "bodies": [message["Body"] for message in messages]}

    with mock_aws():
        plain = sent(boto3.client("sqs", region_name=REGION))
    with interpreter_clients() as client:
        assert sent(client("sqs")) == plain == {"md5": plain["md5"], "bodies": ["a message"]}
