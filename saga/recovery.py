"""Finish what the saga and its reconciler left to a person: ``saga replay``.

Two queues hold it, and a replay drains both, the reconciler's first:

- The reconciler's failure queue holds execution ends it could not finish (their status-change event, after
  EventBridge's or Lambda's retries). Each is handed to the reconciler again, synchronously: it releases the
  booking, finds nothing to do, or parks it in the dead-letter queue, which this replay then reaches too.
- The dead-letter queue holds parked bookings: a cancel still failed after its retries (``CompensationFailed``),
  or the reconciler's did. Replaying one runs every cancel of the saga again, in the deployed definition's
  reverse order, for the same execution (the owner of what it reserved) and with its input (its chaos section
  removed), as the reconciler does. Cancels are idempotent, so those that already ran are no-ops. Then the
  bookings table records the booking as undone by replay (``saga status`` says so).

A message is deleted only once it is handled; one that still fails stays for the next replay.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from booking_saga.reconciliation import PARKED, Cancel, invoker, run_cancels
from saga.definition import compensations
from saga.deployment import Deployment

VISIBILITY_SECONDS = 300  # while one replay works on a message, no other replay sees it
RECONCILED, UNDONE = "reconciled", "undone"


@dataclass
class Replay:
    booking_id: str
    execution_arn: str
    how: str  # RECONCILED (an event handed to the reconciler again) or UNDONE (a parked booking's cancels ran)
    cancels: list[dict] = field(default_factory=list)  # each cancel's answer, in the order they ran
    error: str | None = None  # what still failed: the message stays on its queue
    parked: bool = False  # the reconciler could not finish it either and parked it in the dead-letter queue

    @property
    def finished(self) -> bool:
        return self.error is None and not self.parked

    @property
    def released(self) -> list[str]:
        return [cancel["step"] for cancel in self.cancels if cancel.get("released")]

    def to_json(self) -> dict:
        return {
            "booking_id": self.booking_id,
            "execution_arn": self.execution_arn,
            "how": self.how,
            "finished": self.finished,
            "cancels": self.cancels,
            "parked": self.parked,
            "error": self.error,
        }


def replay_dead_letters(deployment: Deployment, limit: int = 10) -> list[Replay]:
    """Hand up to ``limit`` messages, from both queues, to what finishes them."""
    invoke = invoker(deployment.client("lambda"))
    cancels = [Cancel(state, function) for state, function in compensations(deployment.definition())]

    def reconcile(event: dict) -> Replay:
        error, answer = invoke(deployment.reconciler_function, event)
        arn = event["detail"]["executionArn"]
        booking_id = arn.rsplit(":", 1)[-1]  # executions are named after their booking
        if error is not None:
            failed = f"the reconciler failed: {error}: {answer.get('errorMessage')}"
            return Replay(booking_id, arn, RECONCILED, error=failed)
        released = [{"step": step, "released": True} for step in answer["released"]]
        return Replay(booking_id, arn, RECONCILED, released, parked=answer["outcome"] == PARKED)

    def undo(parked: dict) -> Replay:
        execution_arn = parked["execution_arn"]
        described = deployment.client("stepfunctions").describe_execution(executionArn=execution_arn)
        booking = json.loads(described["input"])
        booking.pop("chaos", None)
        done, error = run_cancels(cancels, invoke, execution_arn, booking)
        replay = Replay(str(booking.get("booking_id")), execution_arn, UNDONE, done, error)
        if replay.finished:
            deployment.registry().resolve(execution_arn, "replay", "undone", replay.to_json())
        return replay

    sqs = deployment.client("sqs")
    replays = drain(sqs, deployment.reconciler_failures_url, limit, reconcile)
    return replays + drain(sqs, deployment.dead_letter_queue_url, limit - len(replays), undo)


def drain(sqs: Any, queue_url: str, limit: int, handle: Callable[[dict], Replay]) -> list[Replay]:
    """Up to ``limit`` messages of the queue, each handed to ``handle`` and deleted once it is done with it."""
    replays: list[Replay] = []
    while len(replays) < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(replays)),
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            replay = handle(json.loads(message["Body"]))
            if replay.error is None:  # handled, also where the reconciler parked it (it is on the other queue now)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            replays.append(replay)
    return replays
