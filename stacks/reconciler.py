"""The reconciler as a construct: an EventBridge rule on the state machine's ends that no catch saw, and the
Lambda that finishes them (``lambdas/reconciler.py``)."""

import json

from aws_cdk import Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.acknowledgments import invoking, reading_executions
from stacks.function import FunctionDefaults, SagaFunction
from stacks.reservation_service import ReservationService
from stacks.storage import dead_letters

# Three cancels, each tried up to three times (5 s apiece at worst), then a park: well within a minute.
TIMEOUT = Duration.seconds(60)
ENDS = ["FAILED", "TIMED_OUT", "ABORTED"]  # the reconciler itself tells clean failures from the others


class Reconciler(Construct):
    """``reconciler.handle``, invoked by EventBridge for every end of the state machine's executions that may have
    left something held. It may read those executions, invoke the saga's cancel functions, park in the saga's
    dead-letter queue and record what it did in the bookings table. Events it could not handle, after
    EventBridge's retries (delivery) or Lambda's (its own failures), land on ``failures``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: FunctionDefaults,
        state_machine: sfn.StateMachine,
        services: list[ReservationService],
        dead_letter_queue: sqs.Queue,
        bookings: dynamodb.Table,
        removal: RemovalPolicy,
    ):
        super().__init__(scope, construct_id)
        self.failures = dead_letters(
            self, "Failures", removal=removal, holds="the execution ends the reconciler could not finish"
        )
        cancels = [
            {"step": service.service.cancel_state, "function": service.cancel.function_arn}
            for service in reversed(services)  # the definition's reverse order: the last step's cancel first
        ]
        handler = SagaFunction(
            self,
            "Handler",
            defaults=defaults,
            handler="reconciler.handle",
            environment={
                "CANCELS": json.dumps(cancels),
                "DEAD_LETTER_QUEUE_URL": dead_letter_queue.queue_url,
                "BOOKINGS_TABLE": bookings.table_name,
            },
            timeout=TIMEOUT,
            dead_letter_queue=self.failures,
        )
        self.function = handler.function
        for service in services:
            service.cancel.grant_invoke(self.function)
        state_machine.grant_execution(self.function, "states:DescribeExecution", "states:GetExecutionHistory")
        Validations.of(handler.role).acknowledge(
            reading_executions(state_machine), *(invoking(service.cancel) for service in services)
        )
        dead_letter_queue.grant_send_messages(self.function)
        bookings.grant(self.function, "dynamodb:PutItem")
        self.rule = events.Rule(
            self,
            "ExecutionEnds",
            description="Executions of the booking saga that ended failed, timed out or aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"stateMachineArn": [state_machine.state_machine_arn], "status": ENDS},
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    retry_attempts=8,
                    max_event_age=Duration.hours(24),
                    dead_letter_queue=self.failures,
                )
            ],
        )
