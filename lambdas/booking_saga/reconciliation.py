"""Finish the sagas that ended where no catch could see them.

Step Functions' catches never see an execution that was stopped (``ABORTED``) or
hit its own timeout (``TIMED_OUT``), nor the errors ``States.ALL`` does not match
(``States.Runtime``, ``States.DataLimitExceeded``), nor a park that itself failed
(``ParkFailed``): any of these can leave seats, rooms or a charge held. An
EventBridge rule on the state machine's status changes hands each end to the
reconciler, which reads the execution and decides:

- it ended cleanly (``BookingFailed`` after its cancels, or ``CompensationFailed``
  with its state parked): nothing to do;
- otherwise it runs every cancel of the saga, in the definition's reverse order,
  for that execution (the owner of what it reserved), by invoking the deployed
  cancel functions, the same idempotent code the state machine runs; where a
  cancel still fails it parks the booking in the dead-letter queue, as the state
  machine would, for ``saga replay``.

Events arrive at least once, and a reconciliation may race a cancel still in
flight or ``saga replay``: cancels are idempotent and release only what their
execution holds, so running them again gives nothing back twice. What it did is
recorded in the bookings table (``BookingRegistry.resolve``), logged, and counted.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from booking_saga.executions import execution_path

# Where an execution that a catch saw ends: its cancels ran (BookingFailed) or its state was parked.
CLEAN_ENDS = ("BookingFailed", "CompensationFailed")
CLEAN, RELEASED, PARKED = "clean", "released", "parked"

# (function ARN, payload) -> (the function's error type or None, its answer)
Invoke = Callable[[str, dict[str, Any]], tuple[str | None, dict[str, Any]]]
# A cancel that fails is tried again after these pauses (a write conflict, throttling), then the booking is parked.
RETRY_PAUSES = (0.5, 1.0)


@dataclass(frozen=True)
class Cancel:
    """One of the saga's cancels: its state's name (what the function is told it runs as) and its function."""

    step: str
    function: str


@dataclass
class Reconciliation:
    execution_arn: str
    booking_id: str
    status: str  # the execution's: FAILED, TIMED_OUT or ABORTED
    ended_in: str | None  # the last state it entered
    outcome: str = CLEAN
    cancels: list[dict[str, Any]] = field(default_factory=list)  # each cancel's answer, in the order they ran
    error: str | None = None  # the cancel that still failed, where the booking was parked

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "booking_id": self.booking_id,
            "status": self.status,
            "ended_in": self.ended_in,
            "outcome": self.outcome,
            "released": [cancel["step"] for cancel in self.cancels if cancel.get("released")],
            "error": self.error,
        }


def invoker(lambda_client: Any) -> Invoke:
    """Run a function as the state machine does, and read its error the way Step Functions does."""

    def invoke(function: str, payload: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(payload))
        answer = json.loads(response["Payload"].read() or "null")
        if "FunctionError" in response:
            return str(answer.get("errorType")), answer
        return None, answer

    return invoke


def run_cancels(
    cancels: list[Cancel], invoke: Invoke, execution_arn: str, booking: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """Every cancel of the saga for this execution, in the order given, each tried again after each of
    ``RETRY_PAUSES`` while it fails. Returns each answer (with its step) and, where one still failed, what
    failed (``"<step>: <error>: <message>"``); the cancels after it are not run."""
    done: list[dict[str, Any]] = []
    for cancel in cancels:
        payload = {"step": cancel.step, "execution": execution_arn, "booking": booking}  # as the state machine sends
        error, answer = invoke(cancel.function, payload)
        for pause in RETRY_PAUSES:
            if error is None:
                break
            time.sleep(pause)
            error, answer = invoke(cancel.function, payload)
        if error is not None:
            return done, f"{cancel.step}: {error}: {answer.get('errorMessage')}"
        done.append({"step": cancel.step, **answer})
    return done, None


class Reconciler:
    """Reads executions through ``stepfunctions``, runs ``cancels`` (in the order given: the definition's
    reverse) through ``invoke``, and hands a booking it cannot finish to ``park``."""

    def __init__(
        self,
        stepfunctions: Any,
        cancels: list[Cancel],
        invoke: Invoke,
        park: Callable[[dict[str, Any]], None],
    ):
        self.stepfunctions = stepfunctions
        self.cancels = cancels
        self.invoke = invoke
        self.park = park

    def reconcile(self, execution_arn: str) -> Reconciliation:
        execution = self.stepfunctions.describe_execution(executionArn=execution_arn)
        booking = json.loads(execution.get("input") or "{}")
        path = execution_path(self.stepfunctions, execution_arn)
        done = Reconciliation(
            execution_arn=execution_arn,
            booking_id=str(booking.get("booking_id")),
            status=execution["status"],
            ended_in=path[-1].name if path else None,
        )
        if done.status == "RUNNING" or (done.status == "FAILED" and done.ended_in in CLEAN_ENDS):
            return done
        done.cancels, done.error = run_cancels(self.cancels, self.invoke, execution_arn, booking)
        if done.error is not None:
            done.outcome = PARKED
            self.park({"execution_arn": execution_arn, "saga": booking, "reconciliation": done.to_json()})
        else:
            done.outcome = RELEASED
        return done
