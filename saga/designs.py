"""The choreographed and atomic designs as ``saga`` reaches them: found by their stacks' outputs, booked, read
(status, verdict, history) and audited with the same promises as the orchestrated saga (``saga.audit``).

A booking id is accepted once in the stack's bookings table (``BookingRegistry``), for one saga instance, before
anything runs: the choreography then puts ``BookingRequested`` on its bus; the atomic design invokes its function
and waits for the answer.
"""

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from booking_saga import atomic, choreography
from booking_saga.contract import Contract, fingerprint
from booking_saga.designs import ATOMIC, CHOREOGRAPHY, stack_name
from booking_saga.executions import BookingRegistry, DuplicateBooking, UnknownBooking, verdict
from booking_saga.ledger import RESERVED, Ledger
from booking_saga.reconciliation import Cancel, invoker, run_cancels
from booking_saga.services import SERVICES, Service
from saga.audit import Audit, Drift, check_stock
from saga.deployment import SagaNotFound, session_for
from saga.recovery import UNDONE, Replay, drain

_PARKED = "CompensationFailed"
# What a parked message holds besides the booking (``booking_saga.choreography.parked_state``).
_PARKED_STATE = ("reservations", "compensations", "failure", "compensation_failure")


@dataclass(frozen=True)
class Ending:
    """How a booking of either design stands: in Step Functions' terms (``verdict`` reads it like an execution)."""

    booking_id: str
    instance: str
    status: str
    error: str | None
    cause: str | None

    resolution: dict[str, Any] | None = None  # a parked booking finished since (``saga replay``)

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.error, self.resolution)


@dataclass(frozen=True)
class DesignDeployment:
    """A deployed choreography or atomic stack: its outputs and the session that reaches it."""

    design: str
    session: boto3.Session
    endpoint_url: str | None
    outputs: dict[str, str]
    contract: Contract
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _creating: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def client(self, service: str) -> Any:
        with self._creating:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
            return self._clients[service]

    def table(self, name: str) -> Any:
        with self._creating:
            if "dynamodb-resource" not in self._clients:
                self._clients["dynamodb-resource"] = self.session.resource("dynamodb", endpoint_url=self.endpoint_url)
            return self._clients["dynamodb-resource"].Table(name)

    def ledger(self, service: str) -> Ledger:
        spec = next(entry for entry in self.contract.services if entry.name == service)
        return Ledger(self.table(self.outputs[spec.table_output]), service)

    def registry(self) -> BookingRegistry:
        return BookingRegistry(self.table(self.outputs["BookingsTable"]))

    def saga_log(self) -> choreography.SagaLog:
        return choreography.SagaLog(self.table(self.outputs["SagaLogTable"]))

    def book(self, booking: dict[str, Any]) -> str:
        """Accept the booking and start it (the atomic design: run it to its end). The same booking again starts
        nothing; the same id with other details raises ``DuplicateBooking``. Returns its instance."""
        booking_id = str(booking.get("booking_id"))
        instance = f"{self.design}:{booking_id}"
        accepted, record = self.registry().accept(booking_id, fingerprint(booking), instance)
        if record["fingerprint"] != fingerprint(booking):
            raise DuplicateBooking(f"booking {booking_id} already exists with other details: use another booking id")
        if not accepted:
            return str(record["execution_arn"])
        if self.design == CHOREOGRAPHY:
            bus = choreography.Bus(self.client("events"), self.outputs["EventBusName"], choreography.BOOKINGS_SOURCE)
            choreography.request(bus, booking, instance)
        else:
            payload = json.dumps({"instance": instance, "booking": booking}, default=str)
            self.client("lambda").invoke(FunctionName=self.outputs["BookFunction"], Payload=payload)
        return instance

    def ending(self, booking_id: str) -> Ending:
        """The booking's status now; ``UnknownBooking`` for an id never accepted here."""
        record = self.registry().record(booking_id)
        if record is None:
            raise UnknownBooking(f"no booking {booking_id} in this stack")
        instance = str(record["execution_arn"])
        if self.design == CHOREOGRAPHY:
            status, error, cause = choreography.status(self.saga_log().entries(instance))
        else:
            status, error, cause = atomic.status(record)
        resolution = self.registry().resolution(instance) if status == "FAILED" else None
        return Ending(booking_id, instance, status, error, cause, resolution)

    def history(self, booking_id: str) -> list[dict[str, Any]]:
        """What happened to the booking, in order: its saga log (choreography) or its record (atomic)."""
        ending = self.ending(booking_id)
        if self.design == CHOREOGRAPHY:
            return [entry.to_json() for entry in self.saga_log().entries(ending.instance)]
        return [{key: str(value) for key, value in (self.registry().record(booking_id) or {}).items()}]

    def replay(self, limit: int = 10) -> list[Replay]:
        """Finish up to ``limit`` parked bookings (choreography): run every cancel again, in reverse order, for
        the booking's saga instance and without its chaos, as ``saga replay`` does for the orchestrated design;
        then the bookings table records it undone by replay."""
        invoke = invoker(self.client("lambda"))
        services = list(reversed(self.contract.services))
        cancels = [
            Cancel(service.cancel_state, self.outputs[f"{service.name.capitalize()}CancelFunction"])
            for service in services
        ]

        def undo(parked: dict[str, Any]) -> Replay:
            booking = {key: value for key, value in parked.items() if key not in _PARKED_STATE}
            booking.pop("chaos", None)
            instance = self.ending(str(booking.get("booking_id"))).instance
            done, error = run_cancels(cancels, invoke, instance, booking)
            replay = Replay(str(booking.get("booking_id")), instance, UNDONE, done, error)
            if replay.finished:
                self.registry().resolve(instance, "replay", "undone", replay.to_json())
            return replay

        return drain(self.client("sqs"), self.outputs["DeadLetterQueueUrl"], limit, undo)

    def audit(self) -> Audit:
        """``saga.audit``'s promises: stock balanced, no RESERVED record of a booking that failed (a leak; a parked
        one is listed as parked), every confirmed booking holding what it asked."""
        report = Audit()
        endings: dict[str, Ending] = {}
        for service in self.contract.services:
            inventory, bookings = self._records(service)
            if service.capacity:
                check_stock(report, service.name, inventory, bookings)
            for booking_id, record in sorted(bookings.items()):
                if record.get("status") == RESERVED:
                    ending = endings.get(booking_id) or endings.setdefault(booking_id, self.ending(booking_id))
                    _check_owner(report, service.name, record, ending)
        confirmed = [ending for ending in endings.values() if ending.status == "SUCCEEDED"]
        report.confirmed = len(confirmed)
        for ending in confirmed:
            for service in self.contract.services:
                if (self.ledger(service.name).record(ending.booking_id) or {}).get("status") != RESERVED:
                    report.drift.append(Drift("confirmed", service.name, ending.booking_id, "confirmed, not held"))
        return report

    def _records(self, service: Service) -> tuple[dict[str, dict], dict[str, dict]]:
        inventory, bookings = self.ledger(service.name).contents()
        return {item["resource_id"]: item for item in inventory}, {item["booking_id"]: item for item in bookings}


def stock(design: DesignDeployment, catalog: dict[str, dict[str, int]]) -> None:
    """Load a catalog (``saga.catalog.load_catalog``) into the design's tables, as ``saga seed`` does the saga's."""
    for service, entries in catalog.items():
        for resource_id, capacity in entries.items():
            design.ledger(service).stock(resource_id, capacity)


def _check_owner(report: Audit, service: str, record: dict[str, Any], ending: Ending) -> None:
    report.reserved += 1
    if record.get("owner") != ending.instance:
        report.drift.append(Drift("leak", service, ending.booking_id, "RESERVED by another instance"))
    elif ending.error == _PARKED:
        report.parked.append(f"{service} {ending.booking_id}")
    elif ending.status not in ("RUNNING", "SUCCEEDED"):
        report.drift.append(Drift("leak", service, ending.booking_id, f"RESERVED by a booking {ending.verdict}"))


def find_design(
    design: str,
    stage: str = "dev",
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    services: tuple[Service, ...] = SERVICES,
) -> DesignDeployment:
    """The design's stack on the stage, by its outputs."""
    if design not in (CHOREOGRAPHY, ATOMIC):
        raise ValueError(f"no design {design!r} here: {CHOREOGRAPHY} or {ATOMIC}")
    name = stack_name(design, stage)
    session = session_for(endpoint_url, region, profile)
    try:
        stack = session.client("cloudformation", endpoint_url=endpoint_url).describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            raise SagaNotFound(f"stack {name} is not deployed at {endpoint_url or session.region_name}") from None
        raise
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    contract = Contract.from_json(json.loads(outputs["BookingContract"]), services)
    return DesignDeployment(design, session, endpoint_url, outputs, contract)
