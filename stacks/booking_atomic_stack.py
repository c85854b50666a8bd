"""The atomic design (``booking_saga.atomic``): one function books the whole trip in a single DynamoDB transaction
over every service's table. Not a saga: the point of comparison (docs/designs.md says why real services cannot)."""

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from booking_saga.atomic import table_variable
from booking_saga.services import SERVICES, Service
from stacks.function import SagaFunction
from stacks.settings import SagaSettings
from stacks.storage import saga_table

# A transaction puts each service's record and updates its inventory, checks chaos's condition, and counts chaos's
# transient failures with a conditional put.
SERVICE_TABLE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem")
# The booking's record: read for a replay, its outcome written (in the transaction, or after it was cancelled).
BOOKINGS_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")


class BookingAtomicStack(Stack):
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
        self.tables = {
            service.name: saga_table(self, service.table_id, protected=settings.is_protected) for service in services
        }
        # Every booking id ever accepted, with its instance and, once decided, its outcome.
        self.bookings = saga_table(self, "Bookings", protected=settings.is_protected)
        self.function = SagaFunction(
            self,
            "Book",
            defaults=defaults,
            handler="atomic.book",
            environment={table_variable(name): table.table_name for name, table in self.tables.items()}
            | {"BOOKINGS_TABLE": self.bookings.table_name},
            service="atomic",
        ).function
        for table in self.tables.values():
            table.grant(self.function, *SERVICE_TABLE_ACTIONS)
        self.bookings.grant(self.function, *BOOKINGS_TABLE_ACTIONS)

        CfnOutput(self, "BookFunction", value=self.function.function_name)
        for service in services:
            CfnOutput(self, service.table_output, value=self.tables[service.name].table_name)
        CfnOutput(self, "BookingsTable", value=self.bookings.table_name)
        CfnOutput(self, "BookingContract", value=settings.contract_json(services), description="What the stack accepts")
