"""Finish what a parked compensation left undone: replay the dead-letter queue.

A booking ends in ``CompensationFailed`` when a cancel still failed after its
retries; its message in the dead-letter queue names the execution. Once the
cause is fixed, replaying runs every cancel of the saga again, in the deployed
definition's reverse order, for the same execution (the owner of what it
reserved) and with its input (its chaos section removed). Cancels are
idempotent, so those that already ran are no-ops. The message is deleted only
when every cancel succeeded, and then the bookings table records the booking
as undone by replay (``saga status`` says so).
"""

import json
from dataclasses import dataclass, field

from saga.definition import compensations
from saga.deployment import Deployment

VISIBILITY_SECONDS = 300  # while one replay works on a message, no other replay sees it


@dataclass
class Replay:
    booking_id: str
    execution_arn: str
    cancels: list[dict] = field(default_factory=list)  # each cancel's result, in the order they ran
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        return {
            "booking_id": self.booking_id,
            "execution_arn": self.execution_arn,
            "finished": self.finished,
            "cancels": self.cancels,
            "error": self.error,
        }


def replay_dead_letters(deployment: Deployment, limit: int = 10) -> list[Replay]:
    sqs, stepfunctions = deployment.client("sqs"), deployment.client("stepfunctions")
    cancels = compensations(deployment.definition())
    replays: list[Replay] = []
    while len(replays) < limit:
        messages = sqs.receive_message(
            QueueUrl=deployment.dead_letter_queue_url,
            MaxNumberOfMessages=min(10, limit - len(replays)),
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            replay = _replay(deployment, stepfunctions, cancels, json.loads(message["Body"]))
            if replay.finished:
                deployment.registry().resolve(replay.execution_arn, "replay", "undone", replay.to_json())
                sqs.delete_message(QueueUrl=deployment.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
            replays.append(replay)
    return replays


def _replay(deployment: Deployment, stepfunctions, cancels: list[tuple[str, str]], body: dict) -> Replay:
    execution_arn = body["execution_arn"]
    booking = json.loads(stepfunctions.describe_execution(executionArn=execution_arn)["input"])
    booking.pop("chaos", None)
    replay = Replay(str(booking.get("booking_id")), execution_arn)
    lambda_ = deployment.client("lambda")
    for state, function in cancels:
        payload = {"step": state, "execution": execution_arn, "booking": booking}  # as the state machine sends it
        response = lambda_.invoke(FunctionName=function, Payload=json.dumps(payload))
        result = json.loads(response["Payload"].read() or "null")
        if "FunctionError" in response:
            replay.error = f"{state}: {result.get('errorType')}: {result.get('errorMessage')}"
            break
        replay.cancels.append({"step": state, **result})
    return replay
