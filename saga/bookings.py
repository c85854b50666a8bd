"""Bookings in a deployment: start one, read its outcome, wait for it to end, list recent ones.

The execution-level logic is ``executions`` (shipped in the Lambda code), which the
HTTP API's Lambda uses too, so both read an outcome the same way.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError

from booking_saga import executions
from booking_saga.executions import DuplicateBooking, Outcome, UnknownBooking, verdict
from saga.deployment import Deployment

__all__ = ["DuplicateBooking", "Outcome", "Summary", "UnknownBooking", "outcome_of", "start_booking", "wait_for"]


@dataclass(frozen=True)
class Summary:
    """One booking in a listing."""

    booking_id: str
    status: str  # the execution's: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    error: str | None
    started: datetime
    stopped: datetime | None
    resolution: dict | None = None  # how an end no catch saw, or a parked booking, was settled since

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.error, self.resolution)

    def to_json(self) -> dict:
        return {
            "booking_id": self.booking_id,
            "verdict": self.verdict,
            "status": self.status,
            "error": self.error,
            "started": self.started.isoformat(),
            "stopped": self.stopped.isoformat() if self.stopped else None,
        }


def start_booking(deployment: Deployment, booking: dict) -> executions.Started:
    """Accept the booking and start its saga in this deployment (see ``executions.start_booking``)."""
    return executions.start_booking(
        deployment.client("stepfunctions"), deployment.registry(), deployment.state_machine_arn, booking
    )


def outcome_of(deployment: Deployment, booking_id: str) -> Outcome:
    """The booking's outcome now (it may still be running), with how it was settled where it was."""
    return executions.status_of(
        deployment.client("stepfunctions"), deployment.registry(), deployment.state_machine_arn, booking_id
    )


def wait_for(deployment: Deployment, booking_id: str, timeout: float = 120, poll: float = 0.1) -> Outcome:
    """Poll until the booking's execution ends, or ``timeout`` seconds pass (then it is still running)."""
    stepfunctions = deployment.client("stepfunctions")
    arn = executions.execution_arn_for(deployment.state_machine_arn, booking_id)
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
    """The newest bookings first; each needs its execution's error, and for some how it was settled since, to tell
    how it ended."""
    stepfunctions = deployment.client("stepfunctions")
    listed = stepfunctions.list_executions(stateMachineArn=deployment.state_machine_arn, maxResults=limit)
    registry = deployment.registry()
    summaries = []
    for execution in listed["executions"]:
        error, resolution, arn = None, None, execution["executionArn"]
        if execution["status"] == "FAILED":
            error = stepfunctions.describe_execution(executionArn=arn).get("error")
        if execution["status"] not in ("RUNNING", "SUCCEEDED"):
            resolution = registry.resolution(arn)
        summaries.append(
            Summary(
                execution["name"],
                execution["status"],
                error,
                execution["startDate"],
                execution.get("stopDate"),
                resolution,
            )
        )
    return sorted(summaries, key=lambda summary: summary.started, reverse=True)
