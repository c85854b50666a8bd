"""One service of the saga, as a construct: its own table, its reserve and cancel functions, and its saga step."""

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from booking_saga.services import Service
from stacks.function import FunctionDefaults, SagaFunction
from stacks.saga_chain import SagaStep
from stacks.storage import saga_table

TASK_TIMEOUT = Duration.seconds(10)  # longer than the function's own 5 s: Step Functions sees that timeout first
# A cancel reads the record, then releases it or leaves a tombstone.
CANCEL_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


class ReservationService(Construct):
    """A service of the saga from its entry in ``SERVICES``: the table it owns; ``<service>.reserve`` and
    ``<service>.cancel``, each allowed only what it does to that table; and the step (a reserve task and its
    cancel task) the saga chains. ``confirms``: its reserve succeeding confirms the booking (the last step)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: Service,
        defaults: FunctionDefaults,
        protected: bool,
        confirms: bool = False,
    ):
        super().__init__(scope, construct_id)
        self.service = service
        self.table = saga_table(self, "Table", protected=protected)
        environment = {"TABLE_NAME": self.table.table_name}
        reserve, cancel = service.functions
        self.reserve = SagaFunction(
            self,
            "Reserve",
            defaults=defaults,
            handler=reserve,
            environment=environment | ({"CONFIRMS_BOOKING": "true"} if confirms else {}),
            service=service.name,
        ).function
        self.cancel = SagaFunction(
            self, "Cancel", defaults=defaults, handler=cancel, environment=environment, service=service.name
        ).function
        # A reserve puts its record and, where it takes capacity, updates the inventory in one transaction.
        self.table.grant(self.reserve, "dynamodb:PutItem", *(["dynamodb:UpdateItem"] if service.capacity else []))
        self.table.grant(self.cancel, *CANCEL_ACTIONS)
        self.step = SagaStep(
            action=_invoke(self, service.reserve_state, self.reserve, f"$.reservations.{service.name}"),
            compensation=_invoke(self, service.cancel_state, self.cancel, f"$.compensations.{service.name}"),
        )


def _invoke(scope: Construct, state: str, function: lambda_.IFunction, result_path: str) -> tasks.LambdaInvoke:
    """A task that hands the Lambda the original booking (not the growing state), its own state name, and the
    execution it runs for (which owns what the Lambda reserves)."""
    return tasks.LambdaInvoke(
        scope,
        state,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {
                "step": sfn.JsonPath.string_at("$$.State.Name"),
                "execution": sfn.JsonPath.execution_id,
                "booking": sfn.JsonPath.object_at("$$.Execution.Input"),
            }
        ),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(TASK_TIMEOUT),
    )
