"""The choreographed saga (``booking_saga.choreography``): the services react to each other's events on a bus of
the stack's own; nothing coordinates them.

Read top to bottom: the bus, the services (a table, a reserve and a cancel function each), the bookings service
(the saga log), the rules (one per reaction, each target with its retry policy and dead-letter queue), what a
failed invocation becomes, parking, alarms, outputs.
"""

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from booking_saga.choreography import BOOKINGS_SOURCE, FAILURE_RECORD, LAMBDA_SOURCES, PARKED, SOURCE_PREFIX, reactions
from booking_saga.services import SERVICES, Service
from stacks.alarms import PERIOD, alarm_topic
from stacks.function import SagaFunction
from stacks.reservation_service import CANCEL_ACTIONS
from stacks.settings import SagaSettings
from stacks.storage import dead_letters, saga_table

# Lambda takes an event from EventBridge at once (it queues it), so a delivery fails only when Lambda itself
# refuses or throttles: a few retries within an hour cover that; a function's own errors are Lambda's to retry.
TARGET_RETRIES = 8
TARGET_MAX_AGE = Duration.hours(1)
# In-process retries of a write conflict before the invocation fails and Lambda retries it (a minute later).
IN_PROCESS_RETRIES = "3"
# A handler emits one event after a few DynamoDB writes; the slack is for a cold start.
CHOREOGRAPHY_TIMEOUT = Duration.seconds(10)


class BookingChoreographyStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: SagaSettings,
        services: tuple[Service, ...] = SERVICES,
        **kwargs: Any,
    ):
        super().__init__(scope, construct_id, **kwargs)
        self.removal = settings.removal
        defaults = settings.function_defaults(self, services)
        self.bus = events.EventBus(self, "Bus")
        failures = destinations.EventBridgeDestination(self.bus)
        common = {"EVENT_BUS": self.bus.event_bus_name, "RETRIES": IN_PROCESS_RETRIES}

        self.tables, functions = {}, {}
        for service in services:
            owner = Construct(self, service.name.capitalize())
            table = self.tables[service.name] = saga_table(owner, "Table", protected=settings.is_protected)
            for action in ("reserve", "cancel"):
                function = SagaFunction(
                    owner,
                    action.capitalize(),
                    defaults=defaults,
                    handler=f"choreography.{action}",
                    environment=common | {"SERVICE": service.name, "TABLE_NAME": table.table_name},
                    service=service.name,
                    timeout=CHOREOGRAPHY_TIMEOUT,
                    on_failure=failures,
                ).function
                # The ledger's reads and writes, the step's decision, chaos's counts: all in its own table.
                table.grant(function, *CANCEL_ACTIONS)
                self.bus.grant_put_events_to(function)
                functions[(service.name, action)] = function

        # Every booking id ever accepted (a booking id is used once), and the saga log: every event, in order.
        self.bookings = saga_table(self, "Bookings", protected=settings.is_protected)
        self.saga_log = saga_table(self, "SagaLog", protected=settings.is_protected, sorted_by="sk")
        self.log_failures = dead_letters(
            self, "SagaLogDeadLetters", removal=settings.removal, holds="saga events the log could not record"
        )
        self.recorder = SagaFunction(
            self,
            "Recorder",
            defaults=defaults,
            handler="choreography.record",
            environment=common | {"SAGA_LOG_TABLE": self.saga_log.table_name},
            service="bookings",
            timeout=CHOREOGRAPHY_TIMEOUT,
            dead_letter_queue=self.log_failures,
        ).function
        self.saga_log.grant(self.recorder, "dynamodb:PutItem", "dynamodb:Query")
        self.bus.grant_put_events_to(self.recorder)

        self.undelivered: list[sqs.Queue] = [self.log_failures]
        self._rule("RecordEvery", events.Match.prefix(SOURCE_PREFIX), None, None, self.recorder)
        for reaction in reactions(services):
            function = functions[(reaction.service.name, reaction.action)]
            self._rule(f"On{reaction.step}", events.Match.prefix(SOURCE_PREFIX), list(reaction.on), None, function)
        for service in services:
            # A reserve whose attempts all failed (a crash, a timeout): its own cancel declares the step failed.
            # A cancel's: the bookings service parks the booking.
            for action, reacting in (("reserve", functions[(service.name, "cancel")]), ("cancel", self.recorder)):
                failed = functions[(service.name, action)]
                detail = {"requestContext": {"functionArn": events.Match.prefix(failed.function_arn)}}
                name = f"{service.name.capitalize()}{action.capitalize()}Failed"
                self._rule(name, list(LAMBDA_SOURCES), [FAILURE_RECORD], detail, reacting)

        self.parking = dead_letters(self, "Parking", removal=settings.removal, holds="bookings whose cancel failed")
        events.Rule(
            self,
            "ParkCompensationFailed",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[BOOKINGS_SOURCE], detail_type=[PARKED]),
            targets=[
                targets.SqsQueue(
                    self.parking,
                    message=events.RuleTargetInput.from_event_path("$.detail.parked"),
                    retry_attempts=TARGET_RETRIES,
                    max_event_age=TARGET_MAX_AGE,
                    dead_letter_queue=self._target_dead_letters("ParkCompensationFailed"),
                )
            ],
        )
        self._alarms()

        CfnOutput(self, "EventBusName", value=self.bus.event_bus_name)
        for service in services:
            CfnOutput(self, service.table_output, value=self.tables[service.name].table_name)
            # What `saga replay` runs, as the state machine's cancels are run, to finish a parked booking.
            cancel = functions[(service.name, "cancel")]
            CfnOutput(self, f"{service.name.capitalize()}CancelFunction", value=cancel.function_name)
        CfnOutput(self, "BookingsTable", value=self.bookings.table_name)
        CfnOutput(self, "SagaLogTable", value=self.saga_log.table_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.parking.queue_url)
        CfnOutput(self, "BookingContract", value=settings.contract_json(services), description="What the stack accepts")

    def _rule(
        self,
        name: str,
        source: Any,
        detail_types: list[str] | None,
        detail: dict[str, Any] | None,
        function: lambda_.IFunction,
    ) -> None:
        """A rule on the stack's bus handing matching events to ``function``, with a retry policy and a dead-letter
        queue of its own for what it could not deliver."""
        events.Rule(
            self,
            name,
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=source, detail_type=detail_types, detail=detail),
            targets=[
                targets.LambdaFunction(
                    function,
                    retry_attempts=TARGET_RETRIES,
                    max_event_age=TARGET_MAX_AGE,
                    dead_letter_queue=self._target_dead_letters(name),
                )
            ],
        )

    def _target_dead_letters(self, rule: str) -> sqs.Queue:
        queue = dead_letters(
            self, f"{rule}DeadLetters", removal=self.removal, holds=f"events rule {rule} could not deliver"
        )
        self.undelivered.append(queue)
        return queue

    def _alarms(self) -> None:
        """Alarms on a parked booking, and on any event a rule (or the saga log) could not deliver."""
        owner = Construct(self, "Alarms")
        topic = alarm_topic(owner, self.removal)
        watched = [("CompensationParked", self.parking, "a booking is partly undone and parked: run `saga replay`")]
        watched += [
            (f"{queue.node.id}Waiting", queue, "a saga event was not delivered: the saga it belongs to is stuck")
            for queue in self.undelivered
        ]
        for name, queue, description in watched:
            alarm = cloudwatch.Alarm(
                owner,
                name,
                metric=queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(actions.SnsAction(topic))
