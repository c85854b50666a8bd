"""An execution's path, step by step, read from its Step Functions history.

Every consumer (tests, the demo, the command line) reads outcomes the same way:
which states ran in which order, how many attempts each took, and the error that
made a step fail.
"""

import json
from dataclasses import dataclass
from datetime import datetime

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
