"""Bookings as executions: start one (named by its booking id), read its outcome, list recent ones."""

import json
import time
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError

from saga.deployment import Deployment
from saga.history import Step, execution_path


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
class Summary:
    """One booking in a listing."""

    booking_id: str
    status: str  # the execution's: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    error: str | None
    started: datetime
    stopped: datetime | None

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.error)

    def to_json(self) -> dict:
        return {
            "booking_id": self.booking_id,
            "verdict": self.verdict,
            "status": self.status,
            "error": self.error,
            "started": self.started.isoformat(),
            "stopped": self.stopped.isoformat() if self.stopped else None,
        }


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
            "failed_step": failed.name if failed else None,
            "compensations": [step.name for step in self.compensations],
            "path": [step.to_json() for step in self.path],
        }


def execution_arn_for(deployment: Deployment, booking_id: str) -> str:
    """Executions are named by booking id, so the ARN follows from the state machine's."""
    return deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{booking_id}"


def start_booking(deployment: Deployment, booking: dict) -> str:
    """Start the saga; the booking id is the execution name, so a retried start is deduplicated."""
    booking_id = str(booking.get("booking_id"))
    try:
        response = deployment.client("stepfunctions").start_execution(
            stateMachineArn=deployment.state_machine_arn, name=booking_id, input=json.dumps(booking)
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionAlreadyExists":
            raise DuplicateBooking(f"booking {booking_id} already exists: use another booking id") from None
        raise
    return response["executionArn"]


def outcome_of(deployment: Deployment, booking_id: str) -> Outcome:
    """The booking's outcome now (it may still be running)."""
    stepfunctions = deployment.client("stepfunctions")
    arn = execution_arn_for(deployment, booking_id)
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


def wait_for(deployment: Deployment, booking_id: str, timeout: float = 120, poll: float = 0.1) -> Outcome:
    """Poll until the booking's execution ends, or ``timeout`` seconds pass (then it is still running)."""
    stepfunctions = deployment.client("stepfunctions")
    arn = execution_arn_for(deployment, booking_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if stepfunctions.describe_execution(executionArn=arn)["status"] != "RUNNING":
                break
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
                raise UnknownBooking(f"no booking {booking_id} in this stack") from None
            raise
        time.sleep(poll)
    return outcome_of(deployment, booking_id)


def recent_bookings(deployment: Deployment, limit: int = 20) -> list[Summary]:
    """The newest bookings first; each needs its execution's error to tell how it ended."""
    stepfunctions = deployment.client("stepfunctions")
    listed = stepfunctions.list_executions(stateMachineArn=deployment.state_machine_arn, maxResults=limit)
    summaries = []
    for execution in listed["executions"]:
        error = None
        if execution["status"] == "FAILED":
            error = stepfunctions.describe_execution(executionArn=execution["executionArn"]).get("error")
        summaries.append(
            Summary(execution["name"], execution["status"], error, execution["startDate"], execution.get("stopDate"))
        )
    return sorted(summaries, key=lambda summary: summary.started, reverse=True)
