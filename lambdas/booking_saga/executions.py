"""Bookings as Step Functions executions: start one named by its booking id, and read how it went.

Every reader (the HTTP API's Lambda, the ``saga`` command, the tests) tells an
outcome the same way from the execution's history: which states ran in which
order, how many attempts each took, and the error that made a step fail.

A booking id is used once, forever: before its saga starts, the booking is
recorded in the stack's bookings table (``BookingRegistry``) with a conditional
write that no expiry undoes. Step Functions' own guard, the execution name,
lasts only while it keeps the closed execution (90 days, or 30).
"""

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from booking_saga.contract import fingerprint

_STATE_TYPES = ("Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")


@dataclass
class Step:
    name: str
    state_type: str
    entered: datetime
    exited: datetime | None = None
    attempts: int = 0
    error: str | None = None  # the last failure inside this state, cleared by a later success
    cause: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def seconds(self) -> float | None:
        return None if self.exited is None else (self.exited - self.entered).total_seconds()

    @property
    def message(self) -> str | None:
        """The error's message, without the handler's "<this step>: " prefix, which is redundant here."""
        message = readable_cause(self.cause)
        return message.removeprefix(f"{self.name}: ") if message else message

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> "Step":
        """A step as ``to_json`` wrote it (what the HTTP API answers)."""
        return cls(
            name=document["name"],
            state_type=document["type"],
            entered=datetime.fromisoformat(document["entered"]),
            exited=datetime.fromisoformat(document["exited"]) if document.get("exited") else None,
            attempts=document.get("attempts", 0),
            error=document.get("error"),
            cause=document.get("cause"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.state_type,
            "entered": self.entered.isoformat(),
            "exited": self.exited.isoformat() if self.exited else None,
            "seconds": self.seconds,
            "attempts": self.attempts,
            "error": self.error,
            "cause": self.message,
        }


def execution_path(stepfunctions: Any, execution_arn: str) -> list[Step]:
    """The states the execution entered, in order, with their attempts and final errors."""
    steps: list[Step] = []
    paginator = stepfunctions.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn):
        for event in page["events"]:
            kind = event["type"]
            if kind.endswith("StateEntered") and kind.removesuffix("StateEntered") in _STATE_TYPES:
                entered = event["stateEnteredEventDetails"]
                steps.append(Step(entered["name"], kind.removesuffix("StateEntered"), event["timestamp"]))
            elif not steps:
                continue
            elif kind.endswith("StateExited"):
                steps[-1].exited = event["timestamp"]
            elif kind.endswith("Scheduled"):
                steps[-1].attempts += 1
            elif kind.endswith("Succeeded") and kind != "ExecutionSucceeded":
                steps[-1].error = steps[-1].cause = None
            elif kind.endswith(("Failed", "TimedOut", "Aborted")):
                details: dict[str, Any] = next(
                    (value for key, value in event.items() if key.endswith("EventDetails")), {}
                )
                steps[-1].error = details.get("error", kind)
                steps[-1].cause = details.get("cause")
                if kind.startswith("Execution"):
                    steps[-1].exited = event["timestamp"]
    return steps


def readable_cause(cause: str | None) -> str | None:
    """What people and callers are shown of an error's cause: a Lambda error arrives as JSON with the
    handler's stack trace and file paths, of which only its ``errorMessage`` is for them."""
    try:
        message = json.loads(cause or "")["errorMessage"]
    except (ValueError, KeyError, TypeError):
        return cause
    return message if isinstance(message, str) else cause


HISTORY_EXPIRED = "history expired"  # the verdict of a booking whose execution Step Functions no longer keeps


class UnknownBooking(LookupError):
    """No execution is named by this booking id."""


class DuplicateBooking(ValueError):
    """The booking id was used before, for other details: a booking id is used once."""


class BookingRegistry:
    """Every booking id ever accepted (the stack's bookings table): the fingerprint of its details, its
    execution, and whether the execution was started. Records never expire."""

    def __init__(self, table: Any):
        self.table = table

    def accept(self, booking_id: str, details: str, execution_arn: str) -> tuple[bool, dict[str, Any]]:
        """Record the booking unless its id is taken: (True, the new record), or (False, the record there)."""
        record = {
            "pk": f"booking#{booking_id}",
            "booking_id": booking_id,
            "fingerprint": details,
            "execution_arn": execution_arn,
            "accepted_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        try:
            self.table.put_item(Item=record, ConditionExpression="attribute_not_exists(pk)")
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False, self.record(booking_id) or record
        return True, record

    def record(self, booking_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key={"pk": f"booking#{booking_id}"}, ConsistentRead=True).get(
            "Item"
        )
        return item

    def resolve(self, execution_arn: str, by: str, outcome: str, details: dict[str, Any]) -> None:
        """Record how an execution that no catch finished was settled, and by whom (``reconciler``, ``replay``):
        ``saga status`` and the HTTP API read it into the verdict."""
        self.table.put_item(
            Item={
                "pk": f"resolution#{execution_arn}",
                "by": by,
                "outcome": outcome,
                "details": json.dumps(details, default=str),
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )

    def resolution(self, execution_arn: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(
            Key={"pk": f"resolution#{execution_arn}"}, ConsistentRead=True
        ).get("Item")
        return None if item is None else {key: item[key] for key in ("by", "outcome", "at")}

    def started(self, booking_id: str) -> None:
        self.table.update_item(
            Key={"pk": f"booking#{booking_id}"},
            UpdateExpression="SET started_at = if_not_exists(started_at, :now)",
            ExpressionAttributeValues={":now": datetime.now(UTC).isoformat(timespec="milliseconds")},
        )


@dataclass(frozen=True)
class Started:
    """A booking's saga, started: ``accepted`` tells whether this request was the one that accepted it."""

    booking_id: str
    execution_arn: str
    accepted: bool


# How a booking ended, as every reader tells it.
CONFIRMED = "confirmed"
REFUSED = "refused"  # invalid input: nothing was reserved, so nothing was compensated
COMPENSATED = "compensated"  # every needed cancel ran
PARKED = "parked"  # partly undone: its state waits in the dead-letter queue for `saga replay`
RELEASED = "released"  # it ended where no catch could see; the reconciler released what it held
UNSETTLED = "not yet released"  # it ended where no catch could see, and the reconciler has not finished it
REPLAYED = "undone by replay"  # parked, then finished by `saga replay`
ROLLED_BACK = "rolled back"  # the atomic design's transaction was cancelled whole: nothing was ever held
RUNNING = "running"
# The status of a booking whose single transaction (the atomic design) was cancelled: not one of Step Functions'.
ROLLED_BACK_STATUS = "ROLLED_BACK"
# Ends no catch sees: the execution's own timeout, a stop, and the errors States.ALL does not match or a failed
# park (a Fail state reached after the state machine's catches ran out).
UNCAUGHT_STATUSES = ("TIMED_OUT", "ABORTED")
UNCAUGHT_ERRORS = ("States.Runtime", "States.DataLimitExceeded", "ParkFailed")


def verdict(status: str | None, error: str | None, resolution: dict[str, Any] | None = None) -> str:
    """How the saga ended, from its execution's status and error and, for an end no catch saw or a parked
    one, how it was settled since (``BookingRegistry.resolution``). No status: Step Functions no longer keeps
    the execution. The other designs give their bookings the same statuses (the atomic one's cancelled
    transaction: ``ROLLED_BACK_STATUS``)."""
    if status is None:
        return HISTORY_EXPIRED
    if status in ("RUNNING", "SUCCEEDED"):
        return RUNNING if status == "RUNNING" else CONFIRMED
    if status == ROLLED_BACK_STATUS:
        return REFUSED if error == "InvalidBooking" else ROLLED_BACK
    if resolution and resolution["by"] == "replay":
        return REPLAYED
    if status in UNCAUGHT_STATUSES or error in UNCAUGHT_ERRORS:
        return {"released": RELEASED, "parked": PARKED}.get(resolution["outcome"] if resolution else "", UNSETTLED)
    if error == "CompensationFailed":
        return PARKED
    return REFUSED if error == "InvalidBooking" else COMPENSATED


@dataclass(frozen=True)
class Outcome:
    """A booking's execution: its status, its error and cause if it failed, and the path it took."""

    booking_id: str
    execution_arn: str
    status: str | None  # None once Step Functions no longer keeps the execution
    error: str | None
    cause: str | None
    booking: dict[str, Any]  # the execution input ({} where it is not known)
    path: list[Step]
    resolution: dict[str, Any] | None = None  # how an end no catch saw, or a parked one, was settled since

    def settled(self, registry: "BookingRegistry") -> "Outcome":
        """This outcome with its resolution, from the bookings table, where one can have been recorded."""
        if self.status in ("SUCCEEDED", "RUNNING", None):
            return self
        return dataclasses.replace(self, resolution=registry.resolution(self.execution_arn))

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.error, self.resolution)

    @property
    def failed_step(self) -> Step | None:
        return next((step for step in self.path if step.failed and step.state_type == "Task"), None)

    @property
    def compensations(self) -> list[Step]:
        """Tasks that ran after the first failed step: the undo chain."""
        failed = self.failed_step
        if failed is None:
            return []
        after = self.path[self.path.index(failed) + 1 :]
        return [step for step in after if step.state_type == "Task" and step.name != "SendToDeadLetterQueue"]

    def to_json(self) -> dict[str, Any]:
        failed = self.failed_step
        return {
            "booking_id": self.booking_id,
            "execution_arn": self.execution_arn,
            "verdict": self.verdict,
            "status": self.status,
            "error": self.error,
            "cause": readable_cause(self.cause),
            "step_reached": self.path[-1].name if self.path else None,
            "failed_step": failed.name if failed else None,
            "compensations": [step.name for step in self.compensations],
            "resolution": self.resolution,
            "path": [step.to_json() for step in self.path],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> "Outcome":
        """An outcome as ``to_json`` wrote it (what the HTTP API answers); the input is not part of it."""
        return cls(
            booking_id=document["booking_id"],
            execution_arn=document["execution_arn"],
            status=document["status"],
            error=document.get("error"),
            cause=document.get("cause"),
            booking={},
            path=[Step.from_json(step) for step in document.get("path", [])],
            resolution=document.get("resolution"),
        )


def execution_arn_for(state_machine_arn: str, booking_id: str) -> str:
    """Executions are named by booking id, so the ARN follows from the state machine's."""
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{booking_id}"


def start_booking(
    stepfunctions: Any, registry: BookingRegistry, state_machine_arn: str, booking: dict[str, Any]
) -> Started:
    """Accept the booking and start its saga, named by its booking id.

    The same booking again (its details, whatever its chaos) starts nothing new: it answers with the
    execution already accepted, and starts it only if the request that accepted it never did. The same
    id with other details raises ``DuplicateBooking``, also once the execution's history has expired.
    """
    booking_id = str(booking.get("booking_id"))
    details = fingerprint(booking)
    arn = execution_arn_for(state_machine_arn, booking_id)
    accepted, record = registry.accept(booking_id, details, arn)
    if record["fingerprint"] != details:
        raise DuplicateBooking(f"booking {booking_id} already exists with other details: use another booking id")
    if accepted or "started_at" not in record:
        try:
            # The same name and input as an open execution start nothing new; a canonical input makes it the same.
            stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=booking_id, input=json.dumps(booking, sort_keys=True)
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
        registry.started(booking_id)
    return Started(booking_id, record["execution_arn"], accepted)


def outcome_of(stepfunctions: Any, state_machine_arn: str, booking_id: str) -> Outcome:
    """The booking's outcome now (it may still be running)."""
    arn = execution_arn_for(state_machine_arn, booking_id)
    try:
        execution = stepfunctions.describe_execution(executionArn=arn)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ExecutionDoesNotExist", "InvalidArn", "InvalidName"):
            raise UnknownBooking(f"no booking {booking_id} in this stack") from None
        raise
    return Outcome(
        booking_id=booking_id,
        execution_arn=arn,
        status=execution["status"],
        error=execution.get("error"),
        cause=execution.get("cause"),
        booking=json.loads(execution.get("input") or "{}"),
        path=execution_path(stepfunctions, arn),
    )


def status_of(stepfunctions: Any, registry: BookingRegistry, state_machine_arn: str, booking_id: str) -> Outcome:
    """The booking's outcome, also once Step Functions has forgotten its execution: then the bookings table still
    knows the id was used, and the verdict says the history expired."""
    try:
        return outcome_of(stepfunctions, state_machine_arn, booking_id).settled(registry)
    except UnknownBooking:
        record = registry.record(booking_id)
        if record is None or "started_at" not in record:
            raise
    return Outcome(
        booking_id=booking_id,
        execution_arn=record["execution_arn"],
        status=None,
        error=None,
        cause="Step Functions no longer keeps this booking's execution; its booking id stays used",
        booking={},
        path=[],
    )
