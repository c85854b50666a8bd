"""Handler tests run the real handlers against moto's DynamoDB, in this process."""

import dataclasses
import json
import sys
from collections.abc import Callable

import boto3
import pytest
from moto import mock_aws

from booking_saga import observability
from booking_saga import service as saga_service
from booking_saga.contract import ENVIRONMENT_VARIABLE, Contract
from booking_saga.ledger import Ledger

TABLES = {"flight": "flights", "hotel": "hotels", "payment": "payments"}
PAYMENT_LIMIT = 100_000  # in JPY
# Currencies without a minor unit and with two decimals: an amount with three decimals is invalid in every one.
CONTRACT = Contract.with_limits({"JPY": PAYMENT_LIMIT, "USD": 700, "EUR": 650}, chaos_enabled=True)
NAMESPACE = "BookingSagaTest"
# The execution the state machine names in every invocation ($$.Execution.Id): it owns what is reserved.
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:BookingSaga:trip-0001"


class LambdaContext:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 100


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


@pytest.fixture
def dynamodb(monkeypatch):
    """Three empty tables shaped like the stack's (key ``pk``), and fresh handler clients."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        ENVIRONMENT_VARIABLE: json.dumps(CONTRACT.to_json()),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        saga_service._dynamodb.cache_clear()
        resource = boto3.resource("dynamodb")
        for table in TABLES.values():
            resource.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield resource
    saga_service._dynamodb.cache_clear()


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
    """Call a handler as its Lambda would be called: its own TABLE_NAME and service, the state machine's payload."""
    import flight
    import hotel
    import payment

    modules = {"flight": flight, "hotel": hotel, "payment": payment}

    def call(service: str, action: str, booking: object, step: str = "", execution: str = EXECUTION) -> dict:
        monkeypatch.setenv("TABLE_NAME", TABLES[service])
        monkeypatch.setattr(observability.metrics, "service", service)
        event = {"step": step, "execution": execution, "booking": booking}
        return getattr(modules[service], action)(event, LambdaContext())

    return call
