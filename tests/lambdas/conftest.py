"""Handler tests run the real handlers against moto's DynamoDB, in this process."""

from collections.abc import Callable

import boto3
import pytest
from moto import mock_aws

import saga_service
from reservations import Ledger

TABLES = {"flight": "flights", "hotel": "hotels", "payment": "payments"}
PAYMENT_LIMIT = 100_000


@pytest.fixture
def dynamodb(monkeypatch):
    """Three empty tables shaped like the stack's (key ``pk``), and fresh handler clients."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CHAOS_ENABLED": "true",
        "PAYMENT_LIMIT": str(PAYMENT_LIMIT),
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
def stock(dynamodb) -> Callable[[str, str, int], None]:
    def put(service: str, resource_id: str, available: int) -> None:
        Ledger(dynamodb.Table(TABLES[service]), service).stock(resource_id, available)

    return put


@pytest.fixture
def invoke(monkeypatch, dynamodb) -> Callable[..., dict]:
    """Call a handler as its Lambda would be called: its own TABLE_NAME, the state machine's payload."""
    import flight
    import hotel
    import payment

    modules = {"flight": flight, "hotel": hotel, "payment": payment}

    def call(service: str, action: str, booking: object, step: str = "") -> dict:
        monkeypatch.setenv("TABLE_NAME", TABLES[service])
        return getattr(modules[service], action)({"step": step, "booking": booking}, None)

    return call
