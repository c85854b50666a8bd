"""`saga audit`: do the tables and the executions agree? The same against the local cloud and AWS.

Three promises are checked, from full (paginated, strongly consistent) scans of every
service's table and the state machine's executions:

- every flight and hotel: ``available + held = capacity``, and ``0 <= available <= capacity``,
  where ``held`` sums the quantities of its ``RESERVED`` records;
- every ``RESERVED`` record belongs to an execution that is running or confirmed: none to a
  failed, timed-out or aborted one (that would be a leak);
- every confirmed execution holds exactly what its booking asked of each service, in records
  it owns.

A record held by a booking parked for a person (its execution ended ``CompensationFailed``, or the
reconciler parked it; its state is in the dead-letter queue, ``saga replay`` finishes it) is listed
as parked, not as drift:
that is one of the saga's three documented ends. A record whose execution Step Functions no
longer keeps (90 days after it closed) cannot be checked against it: it is counted as
unverified, not as drift.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from botocore.exceptions import ClientError

from booking_saga.ledger import RESERVED
from booking_saga.services import Service
from saga.deployment import Deployment

HEALTHY_OWNERS = ("RUNNING", "SUCCEEDED")
PARKED = "CompensationFailed"  # the error of an execution that parked its booking in the dead-letter queue


@dataclass(frozen=True)
class Stock:
    """One resource's numbers, as the audit found them."""

    service: str
    resource_id: str
    capacity: int
    available: int
    held: int

    @property
    def balanced(self) -> bool:
        return self.available + self.held == self.capacity and 0 <= self.available <= self.capacity

    def to_json(self) -> dict:
        return {
            "service": self.service,
            "resource_id": self.resource_id,
            "capacity": self.capacity,
            "available": self.available,
            "held": self.held,
            "balanced": self.balanced,
        }


@dataclass(frozen=True)
class Drift:
    """One broken promise."""

    check: str  # "inventory", "leak" or "confirmed"
    service: str
    subject: str  # a resource id or a booking id
    detail: str

    def to_json(self) -> dict:
        return {"check": self.check, "service": self.service, "subject": self.subject, "detail": self.detail}


@dataclass
class Audit:
    stocks: list[Stock] = field(default_factory=list)
    reserved: int = 0  # RESERVED records checked
    confirmed: int = 0  # confirmed executions checked
    parked: list[str] = field(default_factory=list)  # "<service> <booking id>" held by a parked booking
    unverified: list[str] = field(default_factory=list)  # "<service> <booking id>" whose execution is gone
    drift: list[Drift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drift

    def to_json(self) -> dict:
        return {
            "clean": self.clean,
            "stocks": [stock.to_json() for stock in self.stocks],
            "reserved_records": self.reserved,
            "confirmed_executions": self.confirmed,
            "parked": self.parked,
            "unverified": self.unverified,
            "drift": [drift.to_json() for drift in self.drift],
        }


def audit(deployment: Deployment) -> Audit:
    """Check the deployment's tables, one per service of its saga, against its executions."""
    services = deployment.contract.services
    report = Audit()
    records = {service.name: _records(deployment, service.name) for service in services}
    for service in services:
        inventory, bookings = records[service.name]
        if service.capacity:
            check_stock(report, service.name, inventory, bookings)
        _check_owners(report, deployment, service.name, bookings)
    _check_confirmed(report, deployment, services, {name: bookings for name, (_, bookings) in records.items()})
    return report


def check_stock(report: Audit, service: str, inventory: dict[str, dict], bookings: dict[str, dict]) -> None:
    held: dict[str, int] = {}
    for record in bookings.values():
        if record.get("status") == RESERVED and "resource_id" in record:
            held[record["resource_id"]] = held.get(record["resource_id"], 0) + int(record["quantity"])
    for resource_id, item in sorted(inventory.items()):
        stock = Stock(service, resource_id, int(item["capacity"]), int(item["available"]), held.pop(resource_id, 0))
        report.stocks.append(stock)
        if not stock.balanced:
            report.drift.append(
                Drift(
                    "inventory",
                    service,
                    resource_id,
                    f"available {stock.available} + held {stock.held} != capacity {stock.capacity}",
                )
            )
    for resource_id, quantity in sorted(held.items()):
        report.drift.append(Drift("inventory", service, resource_id, f"{quantity} held of a resource never stocked"))


def _check_owners(report: Audit, deployment: Deployment, service: str, bookings: dict[str, dict]) -> None:
    stepfunctions = deployment.client("stepfunctions")
    statuses: dict[str, tuple[str, str | None] | None] = {}
    for booking_id, record in sorted(bookings.items()):
        if record.get("status") != RESERVED:
            continue
        report.reserved += 1
        owner = record.get("owner")
        if not owner:
            report.drift.append(Drift("leak", service, booking_id, "RESERVED by no execution"))
            continue
        if owner not in statuses:
            statuses[owner] = _status(stepfunctions, owner)
        ended = statuses[owner]
        if ended is None:
            report.unverified.append(f"{service} {booking_id}")
        elif ended == ("FAILED", PARKED) or _parked_by_the_reconciler(deployment, owner, ended):
            report.parked.append(f"{service} {booking_id}")
        elif ended[0] not in HEALTHY_OWNERS:
            report.drift.append(Drift("leak", service, booking_id, f"RESERVED by an execution that ended {ended[0]}"))


def _parked_by_the_reconciler(deployment: Deployment, owner: str, ended: tuple[str, str | None]) -> bool:
    """An end no catch saw that the reconciler could not release either: it parked it, as recorded."""
    if ended[0] in HEALTHY_OWNERS:
        return False
    resolution = deployment.registry().resolution(owner)
    return resolution is not None and resolution["outcome"] == "parked"


def _check_confirmed(
    report: Audit, deployment: Deployment, services: tuple[Service, ...], bookings: dict[str, dict[str, dict]]
) -> None:
    stepfunctions = deployment.client("stepfunctions")
    for execution in _executions(stepfunctions, deployment.state_machine_arn, "SUCCEEDED"):
        described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
        booking = _json(described.get("input"))
        booking_id = str(booking.get("booking_id"))
        report.confirmed += 1
        for service in services:
            record = bookings[service.name].get(booking_id)
            problem = _holds_exactly(record, service, booking.get(service.name), execution["executionArn"])
            if problem:
                report.drift.append(Drift("confirmed", service.name, booking_id, problem))


def _holds_exactly(record: dict | None, service: Service, section: object, owner: str) -> str | None:
    if record is None or record.get("status") != RESERVED:
        return f"confirmed, but its record is {record.get('status') if record else 'missing'}"
    if record.get("owner") != owner:
        return "confirmed, but its record belongs to another execution"
    expected = service.holding(section) if isinstance(section, dict) else {}
    wrong = sorted(name for name, value in expected.items() if not _same(record.get(name), value))
    if wrong or not expected:
        return f"confirmed, but its record holds other {', '.join(wrong) or 'details'} than the booking asked"
    return None


def _records(deployment: Deployment, service: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """The service's inventory by resource id and its booking records by booking id."""
    inventory, bookings = deployment.ledger(service).contents()
    return {item["resource_id"]: item for item in inventory}, {item["booking_id"]: item for item in bookings}


def _executions(stepfunctions, state_machine_arn: str, status: str) -> Iterator[dict]:
    paginator = stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter=status):
        yield from page["executions"]


def _status(stepfunctions, execution_arn: str) -> tuple[str, str | None] | None:
    """The execution's status and error; None for one Step Functions no longer keeps."""
    try:
        described = stepfunctions.describe_execution(executionArn=execution_arn)
        return described["status"], described.get("error")
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ExecutionDoesNotExist", "InvalidArn"):
            return None
        raise


def _same(found: object, expected: object) -> bool:
    """Numbers by value (DynamoDB gives Decimals back; the booking has JSON numbers), anything else equal."""
    numbers = (int, float, Decimal)
    if isinstance(found, numbers) and isinstance(expected, numbers) and not isinstance(expected, bool):
        return Decimal(str(found)) == Decimal(str(expected))
    return found == expected


def _json(text: str | None) -> dict:
    try:
        document = json.loads(text or "{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
