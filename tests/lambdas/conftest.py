"""Handler tests run the real handlers against moto's DynamoDB, in this process."""

import dataclasses
import json
import sys
from collections.abc import Callable

import boto3
import pytest
from moto import mock_aws

import flight
import hotel
import payment
from booking_saga import observability
from booking_saga.contract import ENVIRONMENT_VARIABLE, Contract
from booking_saga.ledger import Ledger
from saga.localcloud.moto_patches import shortcuts
from tests.lambdas.support import CONTRACT, EXECUTION, NAMESPACE, TABLES, LambdaContext

HANDLERS = {"flight": flight, "hotel": hotel, "payment": payment}


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def powertools(monkeypatch):
    """What the stack's environment tells Powertools, given to the objects the handler modules made at import
    (Lambda sets the environment before the import; these tests import once for three services)."""
    for name, value in {
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        "POWERTOOLS_SERVICE_NAME": "saga",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(observability.metrics, "namespace", NAMESPACE)
    # The logger holds the stdout it found at import; make it write where print() (the metrics) writes now,
    # so capsys sees both.
    monkeypatch.setattr(observability.logger.registered_handler, "stream", _CurrentStdout())


@pytest.fixture(scope="session")
def _resource():
    """One boto3 resource for every test: moto intercepts its requests whenever a mock is on, and making one
    costs more than a test's tables."""
    return boto3.resource(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def dynamodb(monkeypatch, _resource):
    """Three empty tables shaped like the stack's (key ``pk``), each given to its service's handlers. moto answers
    through the local cloud's shortcuts (``moto_patches.shortcuts``), which answer what moto does without them."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        ENVIRONMENT_VARIABLE: json.dumps(CONTRACT.to_json()),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(), shortcuts():
        resource = _resource
        for service, table in TABLES.items():
            resource.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            handle = resource.Table(table)  # made once, as the handlers' own ``dynamodb_table`` does
            monkeypatch.setattr(HANDLERS[service].service, "table", lambda handle=handle: handle)
        yield resource


@pytest.fixture
def contract(monkeypatch, dynamodb) -> Callable[[Contract], None]:
    """Run the handlers under another contract, as a stack deployed with other settings would."""
    return lambda other: monkeypatch.setenv(ENVIRONMENT_VARIABLE, json.dumps(other.to_json()))


@pytest.fixture
def chaos_off(contract) -> None:
    """The handlers run as on a stack with chaos off (a protected stage)."""
    contract(dataclasses.replace(CONTRACT, chaos_enabled=False))


@pytest.fixture
def stock(dynamodb) -> Callable[[str, str, int], None]:
    def put(service: str, resource_id: str, capacity: int) -> None:
        Ledger(dynamodb.Table(TABLES[service]), service).stock(resource_id, capacity)

    return put


@pytest.fixture
def invoke(monkeypatch, dynamodb, powertools) -> Callable[..., dict]:
    """Call a handler as its Lambda would be called: its own table and service, the state machine's payload."""

    def call(service: str, action: str, booking: object, step: str = "", execution: str = EXECUTION) -> dict:
        monkeypatch.setattr(observability.metrics, "service", service)
        event = {"step": step, "execution": execution, "booking": booking}
        return getattr(HANDLERS[service], action)(event, LambdaContext())

    return call
