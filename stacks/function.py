"""Every Lambda of the stack, built one way: its own log group and least-privilege role, Powertools, tracing."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.storage import saga_log_group

LAMBDA_CODE = Path(__file__).resolve().parent.parent / "lambdas"
# DynamoDB work takes milliseconds; 5 s leaves room for a cold start and the SDK's own retries,
# and stays well under the task timeout so Step Functions sees the Lambda's own timeout first.
LAMBDA_TIMEOUT = Duration.seconds(5)
# 256 MB buys twice the CPU of 128 MB, which halves boto3's import on a cold start.
LAMBDA_MEMORY_MB = 256
# Powertools for AWS Lambda comes from the layer AWS publishes, found through its public SSM parameter
# /aws/service/powertools/python/{architecture}/{runtime}/{version}: the functions' architecture and
# runtime, and the version requirements-dev.txt pins for local runs and tests (a test checks both).
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/arm64/python3.13/{POWERTOOLS_VERSION}"


@dataclass(frozen=True)
class FunctionDefaults:
    """What every function of a stack shares: the code asset, the Powertools layer, the environment every
    handler reads (the booking contract), and what stack deletion does to its logs."""

    code: lambda_.Code
    powertools: lambda_.ILayerVersion
    environment: Mapping[str, str]
    removal: RemovalPolicy

    @classmethod
    def for_stack(cls, stack: Stack, environment: Mapping[str, str], removal: RemovalPolicy) -> "FunctionDefaults":
        """The lambdas/ asset and the Powertools layer AWS publishes, found at deploy time through SSM."""
        return cls(
            code=lambda_.Code.from_asset(str(LAMBDA_CODE), exclude=["__pycache__", "*.pyc", "*.egg-info"]),
            powertools=lambda_.LayerVersion.from_layer_version_arn(
                stack, "Powertools", ssm.StringParameter.value_for_string_parameter(stack, POWERTOOLS_LAYER_PARAMETER)
            ),
            environment=environment,
            removal=removal,
        )


class SagaFunction(Construct):
    """A Lambda with its own log group and a role that may write only there (no managed policies), traced by
    X-Ray, with Powertools from the stack's layer. ``service`` names it in its logs and metrics (by default the
    handler's module: ``flight`` for ``flight.reserve``); grant it what else it needs through ``function``.
    ``dead_letter_queue`` receives what its asynchronous invocations still failed after Lambda's retries, or
    ``on_failure`` a record of each (its request and error), where a rule can act on it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: FunctionDefaults,
        handler: str,
        environment: Mapping[str, str] | None = None,
        service: str | None = None,
        timeout: Duration = LAMBDA_TIMEOUT,
        dead_letter_queue: sqs.IQueue | None = None,
        on_failure: lambda_.IDestination | None = None,
    ):
        super().__init__(scope, construct_id)
        log_group = saga_log_group(self, "Logs", removal=defaults.removal)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            code=defaults.code,
            handler=handler,
            role=self.role,
            log_group=log_group,
            timeout=timeout,
            memory_size=LAMBDA_MEMORY_MB,
            dead_letter_queue=dead_letter_queue,
            on_failure=on_failure,
            environment={
                **defaults.environment,
                **(environment or {}),
                "POWERTOOLS_SERVICE_NAME": service or handler.split(".")[0],
                "POWERTOOLS_METRICS_NAMESPACE": Stack.of(self).stack_name,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            layers=[defaults.powertools],
            tracing=lambda_.Tracing.ACTIVE,
        )
        runtime = (
            "Python 3.13 is the runtime the handlers are built and tested for; moving to a newer one is a "
            "deliberate, tested upgrade rather than a moving default."
        )
        Validations.of(self.function).acknowledge(
            Acknowledgment(id="AwsSolutions-L1", reason=runtime),
            Acknowledgment(id="Serverless-LambdaLatestVersion", reason=runtime),
        )
        Validations.of(self.function).acknowledge(
            Acknowledgment(
                id="cdk-validator-cfnguard::lambda_inside_vpc_check",
                reason="The functions reach only AWS services' public endpoints (DynamoDB, Step Functions, SQS, "
                "Lambda) and no network of the account's; a VPC would add NAT or endpoints and nothing to guard.",
            )
        )
        if on_failure is not None:
            Validations.of(self.function).acknowledge(
                Acknowledgment(
                    id="Serverless-LambdaDLQ",
                    reason="What its asynchronous invocations still failed after Lambda's retries goes to its "
                    "on-failure destination, with the request and the error, where a rule acts on it.",
                )
            )
        elif dead_letter_queue is None:
            Validations.of(self.function).acknowledge(
                Acknowledgment(
                    id="Serverless-LambdaDLQ",
                    reason="Invoked synchronously (by Step Functions or API Gateway), which sees and handles every "
                    "failure; a dead-letter queue only ever receives failed asynchronous invocations.",
                )
            )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions.",
            )
        )
