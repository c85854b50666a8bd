"""Start a booking (one saga execution, named by its booking id) and wait for its outcome."""

import json
import time
from dataclasses import dataclass

from saga.deployment import Deployment
from saga.history import Step, execution_path

# The state an execution ends in says how the saga ended.
OUTCOMES = {
    "BookingConfirmed": "confirmed",
    "BookingFailed": "compensated",
    "CompensationFailed": "compensation failed",
}


@dataclass(frozen=True)
class Outcome:
    booking_id: str
    execution_arn: str
    status: str  # the execution's: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    path: list[Step]

    @property
    def verdict(self) -> str:
        """confirmed, compensated, compensation failed, running, or the execution status for anything else."""
        if self.status == "RUNNING":
            return "running"
        last = self.path[-1].name if self.path else ""
        return OUTCOMES.get(last, self.status.lower().replace("_", " "))

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


def execution_arn_for(deployment: Deployment, booking_id: str) -> str:
    """Executions are named by booking id, so the ARN follows from the state machine's."""
    return deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{booking_id}"


def start_booking(deployment: Deployment, booking: dict) -> str:
    """Start the saga; the booking id is the execution name, so a retried start is deduplicated."""
    response = deployment.client("stepfunctions").start_execution(
        stateMachineArn=deployment.state_machine_arn, name=str(booking.get("booking_id")), input=json.dumps(booking)
    )
    return response["executionArn"]


def wait_for(deployment: Deployment, booking_id: str, timeout: float = 120, poll: float = 0.1) -> Outcome:
    stepfunctions = deployment.client("stepfunctions")
    arn = execution_arn_for(deployment, booking_id)
    deadline = time.monotonic() + timeout
    while True:
        status = stepfunctions.describe_execution(executionArn=arn)["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            return Outcome(booking_id, arn, status, execution_path(stepfunctions, arn))
        time.sleep(poll)
