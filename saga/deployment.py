"""Find a deployed saga by its stack name, locally or on AWS: never by hard-coded ARNs."""

import functools
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.exceptions import ClientError

from booking_saga.contract import Contract
from booking_saga.executions import BookingRegistry
from booking_saga.ledger import Ledger
from booking_saga.services import SERVICES, Service
from saga.api import BookingApi

DEFAULT_STACK = "BookingSaga"
LOCAL_REGION = "us-east-1"
OUTPUTS = (
    "StateMachineArn",
    "DeadLetterQueueUrl",
    "ReconcilerFunction",
    "ReconcilerFailuresUrl",
    "ApiUrl",
    "BookingsTable",
    "BookingContract",
)
# Where a local cloud serves a REST API: <endpoint>/_aws/execute-api/<api id>/<stage>/
LOCAL_API_PREFIX = "/_aws/execute-api/"
_AWS_API_URL = re.compile(r"https://(?P<api>\w+)\.execute-api\.[\w-]+\.amazonaws\.com(?:\.cn)?/(?P<stage>[^/]+)/")


class SagaNotFound(Exception):
    """The stack is not deployed where we looked."""


@dataclass(frozen=True)
class Deployment:
    """A deployed stack's outputs and the boto3 session that reaches it."""

    session: boto3.Session
    endpoint_url: str | None
    state_machine_arn: str
    tables: dict[str, str]  # service name -> table name
    bookings_table: str  # every booking id accepted (see ``BookingRegistry``)
    dead_letter_queue_url: str  # bookings whose compensation is parked for a person
    reconciler_function: str  # finishes the ends no catch saw (``booking_saga.reconciliation``)
    reconciler_failures_url: str  # the execution ends the reconciler could not finish
    api_url: str  # the booking HTTP API, as this deployment's callers reach it
    contract: Contract  # what the stack accepts (its BookingContract output)
    dynamodb_endpoint_url: str | None = None  # where DynamoDB answers, if elsewhere (a local cloud's own process)
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _creating: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    _tables: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    def client(self, service: str):
        """One boto3 client per AWS service, made on first use (clients are thread-safe; sessions are not)."""
        with self._creating:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
            return self._clients[service]

    def definition(self) -> dict:
        """The state machine's definition as deployed (resolved ARNs), the one source for what runs."""
        described = self.client("stepfunctions").describe_state_machine(stateMachineArn=self.state_machine_arn)
        return json.loads(described["definition"])

    def api(self) -> BookingApi:
        """The booking HTTP API, signing requests with this deployment's credentials."""
        return BookingApi(self.api_url, self.session)

    def table(self, service: str):
        return self._table(self.tables[service])

    def registry(self) -> BookingRegistry:
        """The bookings table: every booking id accepted, with its details' fingerprint and execution."""
        return BookingRegistry(self._table(self.bookings_table))

    def _table(self, name: str):
        """The table's boto3 resource, made once per thread: making one costs about a millisecond (boto3 builds
        a class for it), and resources, unlike clients, are not thread-safe."""
        tables = self._tables.__dict__
        if name not in tables:
            with self._creating:
                if "dynamodb-resource" not in self._clients:
                    endpoint_url = self.dynamodb_endpoint_url or self.endpoint_url
                    resource = self.session.resource("dynamodb", endpoint_url=endpoint_url)
                    self._clients["dynamodb-resource"] = resource
            tables[name] = self._clients["dynamodb-resource"].Table(name)
        return tables[name]

    def ledger(self, service: str) -> Ledger:
        """The service's reservations and inventory, read and written as its Lambdas do."""
        return Ledger(self.table(service), service)


class _UniquePaths(list):
    """Search paths that each boto3 session appends its own data directory to, kept once each."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    """What botocore reads to make a client (service models, endpoints: several MB of JSON), read once per process
    and shared by every session here. A session with a loader of its own reads it all again: about 90 ms for three
    clients, on every command run in a process that runs many (the tests, the benchmark)."""
    data_path = botocore.session.Session().get_config_variable("data_path") or ""  # as a session's own loader
    return botocore.loaders.Loader(
        extra_search_paths=_UniquePaths(os.path.expanduser(path) for path in data_path.split(os.pathsep) if path)
    )


def session_for(endpoint_url: str | None = None, region: str | None = None, profile: str | None = None):
    """The normal credential chain on AWS; fixed dummy credentials for a local endpoint."""
    core = botocore.session.Session()
    core.register_component("data_loader", _shared_loader())
    if endpoint_url:
        return boto3.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",
            region_name=region or LOCAL_REGION,
            botocore_session=core,
        )
    return boto3.Session(region_name=region, profile_name=profile, botocore_session=core)


def find_deployment(
    stack_name: str = DEFAULT_STACK,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    services: tuple[Service, ...] = SERVICES,
    dynamodb_endpoint_url: str | None = None,
) -> Deployment:
    """The stack's outputs, for a saga of these services (each one's table is an output). A local cloud serves
    DynamoDB from a process of its own as well: ``dynamodb_endpoint_url`` reaches it there, sparing its endpoint
    the forwarding."""
    session = session_for(endpoint_url, region, profile)
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            where = endpoint_url or f"region {session.region_name}"
            raise SagaNotFound(f"stack {stack_name} is not deployed at {where}") from None
        raise
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    tables = {service.name: service.table_output for service in services}
    missing = sorted({*OUTPUTS, *tables.values()} - outputs.keys())
    if missing:
        raise SagaNotFound(f"stack {stack_name} is not a booking saga: it has no output {', '.join(missing)}")
    return Deployment(
        session=session,
        endpoint_url=endpoint_url,
        state_machine_arn=outputs["StateMachineArn"],
        tables={service: outputs[output] for service, output in tables.items()},
        bookings_table=outputs["BookingsTable"],
        dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
        reconciler_function=outputs["ReconcilerFunction"],
        reconciler_failures_url=outputs["ReconcilerFailuresUrl"],
        api_url=local_api_url(endpoint_url, outputs["ApiUrl"]) if endpoint_url else outputs["ApiUrl"],
        contract=Contract.from_json(json.loads(outputs["BookingContract"]), services),
        dynamodb_endpoint_url=dynamodb_endpoint_url,
    )


def local_api_url(endpoint_url: str, api_url: str) -> str:
    """Where a local cloud at ``endpoint_url`` serves the REST API whose AWS URL is ``api_url``."""
    match = _AWS_API_URL.match(api_url)
    if match is None:
        raise SagaNotFound(f"the stack's ApiUrl {api_url!r} is not an API Gateway URL")
    return f"{endpoint_url.rstrip('/')}{LOCAL_API_PREFIX}{match['api']}/{match['stage']}/"
