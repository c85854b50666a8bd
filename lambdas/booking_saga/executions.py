"""Bookings as Step Functions executions: start one named by its booking id, and read how it went.

Every reader (the HTTP API's Lambda, the ``saga`` command, the tests) tells an
outcome the same way from the execution's history: which states ran in which
order, how many attempts each took, and the error that made a step fail.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError

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
        """The error's message: Lambda errors arrive as a JSON cause, people want its errorMessage
        (without the handler's "<this step>: " prefix, which is redundant here)."""
        try:
            message = json.loads(self.cause or "")["errorMessage"]
        except (ValueError, KeyError, TypeError):
            return self.cause
        return message.removeprefix(f"{self.name}: ")

    def to_json(self) -> dict:
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


def execution_path(stepfunctions, execution_arn: str) -> list[Step]:
    """The states the execution entered, in order, with their attempts and final errors."""
    steps: list[Step] = []
    paginator = stepfunctions.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn):
        for event in page["events"]:
            kind = event["type"]
            if kind.endswith("StateEntered") and kind.removesuffix("StateEntered") in _STATE_TYPES:
                details = event["stateEnteredEventDetails"]
                steps.append(Step(details["name"], kind.removesuffix("StateEntered"), event["timestamp"]))
            elif not steps:
                continue
            elif kind.endswith("StateExited"):
                steps[-1].exited = event["timestamp"]
            elif kind.endswith("Scheduled"):
                steps[-1].attempts += 1
            elif kind.endswith("Succeeded") and kind != "ExecutionSucceeded":
                steps[-1].error = steps[-1].cause = None
            elif kind.endswith(("Failed", "TimedOut", "Aborted")):
                details = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
                steps[-1].error = details.get("error", kind)
                steps[-1].cause = details.get("cause")
                if kind.startswith("Execution"):
                    steps[-1].exited = event["timestamp"]
    return steps


class UnknownBooking(LookupError):
    """No execution is named by this booking id."""


class DuplicateBooking(ValueError):
    """The booking id was used before: Step Functions keeps execution names unique."""


def verdict(status: str, error: str | None) -> str:
    """How the saga ended. Every reserve and cancel catches all errors, so a FAILED execution
    ended in one of the two Fail states, which its error tells apart."""
    if status == "SUCCEEDED":
        return "confirmed"
    if status == "FAILED":
        return "compensation failed" if error == "CompensationFailed" else "compensated"
    return status.lower().replace("_", " ")  # running, timed out, aborted


@dataclass(frozen=True)
class Outcome:
    """A booking's execution: its status, its error and cause if it failed, and the path it took."""

    booking_id: str
    execution_arn: str
    status: str
    error: str | None
    cause: str | None
    booking: dict  # the execution input
    path: list[Step]

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.error)

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

    def to_json(self) -> dict:
        failed = self.failed_step
        return {
            "booking_id": self.booking_id,
            "execution_arn": self.execution_arn,
            "verdict": self.verdict,
            "status": self.status,
            "error": self.error,
            "cause": self.cause,
            "step_reached": self.path[-1].name if self.path else None,
            "failed_step": failed.name if failed else None,
            "compensations": [step.name for step in self.compensations],
            "path": [step.to_json() for step in self.path],
        }


def execution_arn_for(state_machine_arn: str, booking_id: str) -> str:
    """Executions are named by booking id, so the ARN follows from the state machine's."""
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{booking_id}"


def start_booking(stepfunctions, state_machine_arn: str, booking: dict) -> str:
    """Start the saga; the booking id is the execution name, so a retried start is deduplicated."""
    booking_id = str(booking.get("booking_id"))
    try:
        response = stepfunctions.start_execution(
            stateMachineArn=state_machine_arn, name=booking_id, input=json.dumps(booking)
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionAlreadyExists":
            raise DuplicateBooking(f"booking {booking_id} already exists: use another booking id") from None
        raise
    return response["executionArn"]


def outcome_of(stepfunctions, state_machine_arn: str, booking_id: str) -> Outcome:
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
