"""The trip-booking saga: three services, each with its own table and reserve/cancel Lambdas,
orchestrated by a Step Functions state machine that compensates in reverse order."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from booking_saga.contract import DEFAULT_PAYMENT_LIMITS, ENVIRONMENT_VARIABLE, Contract
from booking_saga.services import SERVICES
from stacks.alarms import SagaAlarms
from stacks.booking_api import BookingApi
from stacks.saga_chain import COMPENSATION_FAILURE_PATH, FAILURE_PATH, Saga, SagaStep

LAMBDA_CODE = Path(__file__).resolve().parent.parent / "lambdas"
# DynamoDB work takes milliseconds; 5 s leaves room for a cold start and the SDK's own retries,
# and stays well under the task timeout so Step Functions sees the Lambda's own timeout first.
LAMBDA_TIMEOUT = Duration.seconds(5)
TASK_TIMEOUT = Duration.seconds(10)
# 256 MB buys twice the CPU of 128 MB, which halves boto3's import on a cold start.
LAMBDA_MEMORY_MB = 256
# Powertools for AWS Lambda comes from the layer AWS publishes, found through its public SSM parameter
# /aws/service/powertools/python/{architecture}/{runtime}/{version}: the functions' architecture and
# runtime, and the version requirements-dev.txt pins for local runs and tests (a test checks both).
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/arm64/python3.13/{POWERTOOLS_VERSION}"
# Worst case: every compensation exhausting its retries (about 5 minutes each) after the reserves.
EXECUTION_TIMEOUT = Duration.minutes(30)

_CANCEL_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# Development stages: chaos may be on, and their data goes with the stack. Every other stage is protected.
DEVELOPMENT_STAGES = ("dev", "test")
DEVELOPMENT_PREFIX = "dev-"  # dev-alice, dev-ci, ...


@dataclass(frozen=True)
class SagaSettings:
    """Deployment settings, read from CDK context (``cdk deploy -c stage=production``)."""

    stage: str = "dev"
    chaos_enabled: bool = True
    payment_limits: tuple[tuple[str, int | str], ...] = tuple(DEFAULT_PAYMENT_LIMITS.items())
    log_level: str = "ERROR"  # what the state machine logs: ALL, ERROR, FATAL or OFF

    @property
    def stack_name(self) -> str:
        return "BookingSaga" if self.stage == "dev" else f"BookingSaga-{self.stage}"

    @property
    def is_protected(self) -> bool:
        """Only an explicitly named development stage is unprotected: ``prd``, ``live`` or a typo are protected."""
        return not is_development_stage(self.stage)

    @property
    def contract(self) -> Contract:
        return Contract.with_limits(dict(self.payment_limits), self.chaos_enabled)

    @classmethod
    def from_context(cls, node) -> "SagaSettings":
        stage = _stage(node.try_get_context("stage") or "dev")
        chaos = node.try_get_context("chaos")
        settings = cls(
            stage=stage,
            chaos_enabled=is_development_stage(stage) if chaos is None else _flag(chaos, "chaos"),
            payment_limits=_payment_limits(node.try_get_context("payment_limits") or DEFAULT_PAYMENT_LIMITS),
            log_level=_log_level(node.try_get_context("log_level") or cls.log_level),
        )
        if settings.is_protected and settings.chaos_enabled:
            raise ValueError(
                f"chaos cannot be enabled on the protected stage {stage!r} "
                f"(development stages: {', '.join(DEVELOPMENT_STAGES)}, {DEVELOPMENT_PREFIX}<name>)"
            )
        try:
            settings.contract  # noqa: B018 - refuses unknown currencies and bad limits at synth
        except ValueError as error:
            raise ValueError(f"context payment_limits: {error}") from None
        return settings


def is_development_stage(stage: str) -> bool:
    named = stage.startswith(DEVELOPMENT_PREFIX) and len(stage) > len(DEVELOPMENT_PREFIX)
    return stage in DEVELOPMENT_STAGES or named


def _stage(value: object) -> str:
    stage = str(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,39}", stage):
        raise ValueError(f"context stage must be a letter, then up to 39 letters, digits or -, not {value!r}")
    return stage


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"context {name} must be true or false, not {value!r}")


def _log_level(value: object) -> str:
    if str(value).upper() in sfn.LogLevel.__members__:
        return str(value).upper()
    raise ValueError(f"context log_level must be one of {', '.join(sfn.LogLevel.__members__)}, not {value!r}")


def _payment_limits(value: object) -> tuple[tuple[str, int | str], ...]:
    """``{"JPY": 500000, "USD": 3500}``: an object in cdk.json, or its JSON text after ``-c payment_limits=``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or not value:
        raise ValueError('context payment_limits must be a JSON object such as {"JPY": 500000, "USD": 3500}')
    return tuple((str(code), limit) for code, limit in value.items())


class BookingSagaStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: SagaSettings, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if settings.is_protected else RemovalPolicy.DESTROY
        contract = json.dumps(settings.contract.to_json(), separators=(",", ":"))
        code = lambda_.Code.from_asset(str(LAMBDA_CODE), exclude=["__pycache__", "*.pyc"])
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER)
        )

        steps, functions = [], []
        self.tables: dict[str, dynamodb.Table] = {}
        for service in SERVICES:
            table = self._table(service.table_id, settings, removal)
            self.tables[service.name] = table
            environment = {"TABLE_NAME": table.table_name, ENVIRONMENT_VARIABLE: contract}
            # The saga's last reserve succeeding confirms the booking: that function counts BookingsConfirmed.
            confirms = {"CONFIRMS_BOOKING": "true"} if service == SERVICES[-1] else {}
            reserve = self._function(
                service.reserve_state,
                code,
                f"{service.name}.reserve",
                environment | confirms,
                removal,
                service=service.name,
            )
            cancel = self._function(
                service.cancel_state, code, f"{service.name}.cancel", environment, removal, service=service.name
            )
            # A reserve puts its record and, where it takes capacity, updates the inventory in one transaction.
            table.grant(reserve, "dynamodb:PutItem", *(["dynamodb:UpdateItem"] if service.capacity else []))
            table.grant(cancel, *_CANCEL_ACTIONS)
            functions += [reserve, cancel]
            steps.append(
                SagaStep(
                    action=_invoke(self, service.reserve_state, reserve, f"$.reservations.{service.name}"),
                    compensation=_invoke(self, service.cancel_state, cancel, f"$.compensations.{service.name}"),
                )
            )

        self.dead_letter_queue = sqs.Queue(
            self,
            "CompensationDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal,
        )
        Validations.of(self.dead_letter_queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the saga's dead-letter queue: it parks failed compensations for an "
                "operator.",
            )
        )
        park = tasks.SqsSendMessage(
            self,
            "SendToDeadLetterQueue",
            queue=self.dead_letter_queue,
            message_body=sfn.TaskInput.from_object(
                {"execution_arn": sfn.JsonPath.execution_id, "saga": sfn.JsonPath.entire_payload}
            ),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(TASK_TIMEOUT),
        )
        park.add_retry(errors=[sfn.Errors.ALL], max_attempts=5, backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)
        park.next(
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

        saga = Saga(
            self,
            "Saga",
            steps=steps,
            succeeded=sfn.Succeed(self, "BookingConfirmed"),
            failed=sfn.Fail(
                self, "BookingFailed", error_path=f"{FAILURE_PATH}.Error", cause_path=f"{FAILURE_PATH}.Cause"
            ),
            on_compensation_failure=park,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "BookingStateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(saga.definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=EXECUTION_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(
                    self, "StateMachineLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=removal
                ),
                level=sfn.LogLevel[settings.log_level],
            ),
        )
        Validations.of(self.state_machine).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SF1",
                reason="Errors are logged; logging every event of every booking is a cost choice left to the stage.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Log delivery and X-Ray trace APIs have no resource-level permissions.",
            ),
            *(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{self.resolve(self.get_logical_id(fn.node.default_child))}.Arn>:*]",
                    reason="Step Functions invokes the function by ARN and may name a version or alias: '<arn>:*'.",
                )
                for fn in functions
            ),
        )

        self.alarms = SagaAlarms(
            self, "Alarms", state_machine=self.state_machine, dead_letter_queue=self.dead_letter_queue
        )

        # Every booking id ever accepted, with the fingerprint of its details and its execution: a booking id
        # is used once, also after Step Functions has forgotten the execution (90 days after it closed).
        self.bookings = self._table("Bookings", settings, removal)
        api_environment = {
            "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
            "BOOKINGS_TABLE": self.bookings.table_name,
            ENVIRONMENT_VARIABLE: contract,
        }
        api_handler = self._function("BookingsApi", code, "bookings_api.handle", api_environment, removal)
        self.bookings.grant(api_handler, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        self.state_machine.grant_start_execution(api_handler)
        self.state_machine.grant_execution(api_handler, "states:DescribeExecution", "states:GetExecutionHistory")
        Validations.of(api_handler.role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{_execution_arns(self.state_machine)}]",
                reason="Executions are named by booking id at run time; the API reads only this machine's.",
            )
        )
        self.api = BookingApi(
            self, "BookingApi", handler=api_handler, schema=settings.contract.json_schema(), removal=removal
        )

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        for service in SERVICES:
            CfnOutput(self, f"{service.table_id}Table", value=self.tables[service.name].table_name)
        CfnOutput(self, "BookingsTable", value=self.bookings.table_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dead_letter_queue.queue_url)
        CfnOutput(
            self, "BookingContract", value=contract, description="What the stack accepts: currencies and limits, chaos"
        )
        CfnOutput(self, "ApiUrl", value=self.api.api.url, description="The booking HTTP API (IAM-signed requests)")

    def _table(self, construct_id: str, settings: SagaSettings, removal: RemovalPolicy) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=settings.is_protected,
            removal_policy=removal,
        )

    def _function(
        self, name: str, code, handler: str, environment: dict, removal: RemovalPolicy, *, service: str | None = None
    ):
        """A Lambda with its own log group and a role that may write only there (no managed policies),
        traced by X-Ray, with Powertools from the stack's layer. ``service`` names it in its logs and
        metrics (by default the handler's module: ``flight`` for ``flight.reserve``)."""
        log_group = logs.LogGroup(self, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=removal)
        role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            f"{name}Function",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            code=code,
            handler=handler,
            role=role,
            log_group=log_group,
            timeout=LAMBDA_TIMEOUT,
            memory_size=LAMBDA_MEMORY_MB,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": service or handler.split(".")[0],
                "POWERTOOLS_METRICS_NAMESPACE": Stack.of(self).stack_name,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            layers=[self.powertools],
            tracing=lambda_.Tracing.ACTIVE,
        )
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.13 is the runtime the handlers are built and tested for; moving to a newer one "
                "is a deliberate, tested upgrade rather than a moving default.",
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions.",
            )
        )
        return function


def _invoke(scope: Construct, state: str, fn: lambda_.IFunction, result_path: str) -> tasks.LambdaInvoke:
    """A task that hands the Lambda the original booking (not the growing state), its own state name, and the
    execution it runs for (which owns what the Lambda reserves)."""
    return tasks.LambdaInvoke(
        scope,
        state,
        lambda_function=fn,
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


def _execution_arns(state_machine: sfn.StateMachine) -> str:
    """How cdk-nag names the ARN pattern of a state machine's executions (its name cut from its ARN)."""
    arn = Stack.of(state_machine).resolve(state_machine.state_machine_arn)
    name = json.dumps({"Fn::Select": [6, {"Fn::Split": [":", arn]}]}, separators=(",", ":"))
    return f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{name}:*"
