"""The trip-booking saga: one reservation service per entry in ``SERVICES``, each with its own table and
reserve/cancel Lambdas, orchestrated by a Step Functions state machine that compensates in reverse order.

Read top to bottom: services, saga, state machine, reconciler, alarms, API, outputs.
"""

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Duration, Stack, Validations
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from booking_saga.services import SERVICES, Service
from stacks.acknowledgments import invoking
from stacks.alarms import SagaAlarms
from stacks.booking_api import BookingApi
from stacks.reconciler import Reconciler
from stacks.reservation_service import ReservationService
from stacks.saga_chain import FAILURE_PATH, DeadLetterParking, Saga
from stacks.settings import SagaSettings
from stacks.storage import saga_log_group, saga_table

# Worst case: every compensation exhausting its retries (about 5 minutes each) after the reserves.
EXECUTION_TIMEOUT = Duration.minutes(30)


class BookingSagaStack(Stack):
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
        defaults = settings.function_defaults(self, services)

        self.services = [
            ReservationService(
                self,
                service.name.capitalize(),
                service=service,
                defaults=defaults,
                protected=settings.is_protected,
                confirms=service is services[-1],  # the last reserve succeeding is the booking confirmed
            )
            for service in services
        ]

        self.parking = DeadLetterParking(self, "Parking", removal=settings.removal)
        saga = Saga(
            self,
            "Saga",
            steps=[service.step for service in self.services],
            succeeded=sfn.Succeed(self, "BookingConfirmed"),
            failed=sfn.Fail(
                self, "BookingFailed", error_path=f"{FAILURE_PATH}.Error", cause_path=f"{FAILURE_PATH}.Cause"
            ),
            on_compensation_failure=self.parking.start,
        )

        self.state_machine = sfn.StateMachine(
            self,
            "BookingStateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(saga.definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=EXECUTION_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=saga_log_group(self, "StateMachineLogs", removal=settings.removal),
                level=sfn.LogLevel[settings.log_level],
            ),
        )
        self._acknowledge_state_machine_findings()

        # Every booking id ever accepted, with the fingerprint of its details and its execution: a booking id
        # is used once, also after Step Functions has forgotten the execution (90 days after it closed).
        self.bookings = saga_table(self, "Bookings", protected=settings.is_protected)

        self.reconciler = Reconciler(
            self,
            "Reconciler",
            defaults=defaults,
            state_machine=self.state_machine,
            services=self.services,
            dead_letter_queue=self.parking.queue,
            bookings=self.bookings,
            removal=settings.removal,
        )
        self.alarms = SagaAlarms(
            self,
            "Alarms",
            state_machine=self.state_machine,
            dead_letter_queue=self.parking.queue,
            reconciler=self.reconciler.function,
            reconciler_failures=self.reconciler.failures,
            removal=settings.removal,
        )
        self.api = BookingApi(
            self,
            "BookingApi",
            defaults=defaults,
            state_machine=self.state_machine,
            bookings=self.bookings,
            schema=settings.contract(services).json_schema(),
        )

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        for service in self.services:
            CfnOutput(self, service.service.table_output, value=service.table.table_name)
        CfnOutput(self, "BookingsTable", value=self.bookings.table_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.parking.queue.queue_url)
        CfnOutput(self, "ReconcilerFunction", value=self.reconciler.function.function_name)
        CfnOutput(
            self,
            "ReconcilerFailuresUrl",
            value=self.reconciler.failures.queue_url,
            description="Execution ends the reconciler could not finish (saga replay hands them to it again)",
        )
        CfnOutput(
            self,
            "BookingContract",
            value=settings.contract_json(services),
            description="What the stack accepts: currencies and limits, chaos",
        )
        CfnOutput(self, "ApiUrl", value=self.api.api.url, description="The booking HTTP API (IAM-signed requests)")

    def _acknowledge_state_machine_findings(self) -> None:
        functions = [function for service in self.services for function in (service.reserve, service.cancel)]
        Validations.of(self.state_machine).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SF1",
                reason="Errors are logged; logging every event of every booking is a cost choice left to the stage.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Log delivery and X-Ray trace APIs have no resource-level permissions.",
            ),
            *(invoking(function) for function in functions),
        )
