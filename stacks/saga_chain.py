"""A saga as a construct: steps run in order, and any failure undoes them in reverse.

Give it the ordered steps (each a reserve task and its cancel task); it chains
the reserves, retries transient errors, and wires each reserve's catch into the
compensation chain at the step's own cancel. A step can fail after its write
landed (a timeout, a crash after commit), so its own cancel runs too; cancels
are idempotent and do nothing where nothing was reserved. A compensation that
still fails after its retries goes to ``DeadLetterParking``.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.storage import dead_letters

# Errors worth retrying on a reserve: the Lambda service's own hiccups and write conflicts.
# Business errors (SoldOut, PaymentDeclined, InvalidBooking, ...) are deliberately absent.
TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransientFailure",
]
# Retries after the first attempt (Step Functions' MaxAttempts).
RESERVE_RETRIES = 3
COMPENSATION_RETRIES = 8
FAILURE_PATH = "$.failure"
COMPENSATION_FAILURE_PATH = "$.compensation_failure"
PARK_TIMEOUT = Duration.seconds(10)
PARK_FAILURE_PATH = "$.park_failure"


@dataclass(frozen=True)
class SagaStep:
    """One step: the task that does it and the task that undoes it."""

    action: sfn.TaskStateBase
    compensation: sfn.TaskStateBase


class Saga(Construct):
    """Wires ordered steps into a forward chain and a reverse compensation chain.

    ``definition`` is the first state. A compensation that still fails after its
    retries goes to ``on_compensation_failure`` so no half-undone saga is silent.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        steps: Sequence[SagaStep],
        succeeded: sfn.IChainable,
        failed: sfn.State,
        on_compensation_failure: sfn.IChainable,
    ):
        super().__init__(scope, construct_id)
        if not steps:
            raise ValueError("a saga needs at least one step")
        undo_next: sfn.IChainable = failed
        for step, following in zip(steps, [*steps[1:], None], strict=True):
            step.action.add_retry(
                errors=TRANSIENT_ERRORS,
                interval=Duration.seconds(1),
                max_attempts=RESERVE_RETRIES,
                backoff_rate=2,
                max_delay=Duration.seconds(10),
                jitter_strategy=sfn.JitterType.FULL,
            )
            step.action.add_catch(step.compensation, errors=[sfn.Errors.ALL], result_path=FAILURE_PATH)
            step.action.next(following.action if following else succeeded)
            # Compensations retry everything, longer: a saga must not stop half-undone.
            step.compensation.add_retry(
                errors=[sfn.Errors.ALL],
                interval=Duration.seconds(2),
                max_attempts=COMPENSATION_RETRIES,
                backoff_rate=2,
                max_delay=Duration.seconds(60),
                jitter_strategy=sfn.JitterType.FULL,
            )
            step.compensation.add_catch(
                on_compensation_failure, errors=[sfn.Errors.ALL], result_path=COMPENSATION_FAILURE_PATH
            )
            step.compensation.next(undo_next)
            undo_next = step.compensation
        self.definition: sfn.IChainable = steps[0].action


class DeadLetterParking(Construct):
    """Where a saga whose compensation cannot finish goes: its state (``saga``) and execution in one message on an
    SQS dead-letter queue, for a person (``saga replay``), and the execution ends ``CompensationFailed``, never
    silently half-undone; if even that send fails, ``ParkFailed``. ``start`` is the state to chain to."""

    def __init__(self, scope: Construct, construct_id: str, *, removal: RemovalPolicy):
        super().__init__(scope, construct_id)
        self.queue = dead_letters(
            self, "CompensationDeadLetters", removal=removal, holds="the state of sagas whose compensation failed"
        )
        self.start = tasks.SqsSendMessage(
            self,
            "SendToDeadLetterQueue",
            queue=self.queue,
            message_body=sfn.TaskInput.from_object(
                {"execution_arn": sfn.JsonPath.execution_id, "saga": sfn.JsonPath.entire_payload}
            ),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(PARK_TIMEOUT),
        )
        self.start.add_retry(
            errors=[sfn.Errors.ALL], max_attempts=5, backoff_rate=2, jitter_strategy=sfn.JitterType.FULL
        )
        # Parking can fail too (SQS down after the retries): end in a Fail state of its own, which the reconciler
        # handles like the other ends no catch of the saga's saw, rather than with an unexplained failure.
        self.start.add_catch(
            sfn.Fail(
                self,
                "ParkFailed",
                error="ParkFailed",
                cause_path=sfn.JsonPath.format(
                    "Booking {} is only partly undone and its state could not be parked: {}.",
                    sfn.JsonPath.execution_name,
                    sfn.JsonPath.string_at(f"{PARK_FAILURE_PATH}.Error"),
                ),
            ),
            errors=[sfn.Errors.ALL],
            result_path=PARK_FAILURE_PATH,
        )
        self.start.next(
            sfn.Fail(
                self,
                "CompensationFailed",
                error="CompensationFailed",
                cause_path=sfn.JsonPath.format(
                    "Booking {} is only partly undone: {}. Its state is in the dead-letter queue.",
                    sfn.JsonPath.execution_name,
                    sfn.JsonPath.string_at(f"{COMPENSATION_FAILURE_PATH}.Error"),
                ),
            )
        )
