"""The booking HTTP API: API Gateway in front of one Lambda, IAM-authorized, with the body checked at the gate.

``POST /bookings`` and ``GET /bookings/{booking_id}``. The request model is the
contract's JSON schema of the booking (``Contract.json_schema``), so API Gateway
answers a malformed body with a 400 before anything runs; the Lambda then checks
the whole contract (the same code every saga step runs), since a schema cannot
say everything.
"""

from typing import Any

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.acknowledgments import reading_executions
from stacks.function import FunctionDefaults, SagaFunction
from stacks.storage import saga_log_group

STAGE = "v1"
THROTTLE_RATE, THROTTLE_BURST = 100, 200  # requests per second, and the burst above it
# JSON schema keywords as aws_apigateway.JsonSchema names them
_KEYWORDS = {
    "$schema": "schema",
    "additionalProperties": "additional_properties",
    "exclusiveMinimum": "exclusive_minimum",
}


def json_schema(document: dict[str, Any]) -> apigateway.JsonSchema:
    """A JSON schema document (the contract's) as the CDK's model schema."""
    values = {}
    for key, value in document.items():
        if key == "type":
            value = apigateway.JsonSchemaType[value.upper()]
        elif key == "$schema":
            value = apigateway.JsonSchemaVersion.DRAFT4
        elif key == "properties":
            value = {name: json_schema(schema) for name, schema in value.items()}
        values[_KEYWORDS.get(key, key)] = value
    return apigateway.JsonSchema(**values)


class BookingApi(Construct):
    """The REST API and its Lambda (``bookings_api.handle``), which may start and read this state machine's
    executions and use the bookings table, nothing else."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: FunctionDefaults,
        state_machine: sfn.StateMachine,
        bookings: dynamodb.Table,
        schema: dict[str, Any],
    ):
        super().__init__(scope, construct_id)
        handler = SagaFunction(
            self,
            "Handler",
            defaults=defaults,
            handler="bookings_api.handle",
            environment={"STATE_MACHINE_ARN": state_machine.state_machine_arn, "BOOKINGS_TABLE": bookings.table_name},
        )
        bookings.grant(handler.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        state_machine.grant_start_execution(handler.function)
        state_machine.grant_execution(handler.function, "states:DescribeExecution", "states:GetExecutionHistory")
        Validations.of(handler.role).acknowledge(reading_executions(state_machine))
        access_logs = saga_log_group(self, "AccessLogs", removal=defaults.removal)
        self.api = apigateway.RestApi(
            self,
            "Api",
            description="Book a trip (POST /bookings) and follow it (GET /bookings/{booking_id})",
            # API Gateway logs through one role per account and region, which every REST API there shares:
            # deleting this stack (a development one, say) must not take it away from the others.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                tracing_enabled=True,
                # The stage's own ceiling, below the account's: a runaway client cannot start sagas without end.
                throttling_rate_limit=THROTTLE_RATE,
                throttling_burst_limit=THROTTLE_BURST,
            ),
            default_method_options=apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM),
            endpoint_types=[apigateway.EndpointType.REGIONAL],
        )
        self.api.node.try_remove_child("Endpoint")  # the stack names its own output: ApiUrl
        # Say what was wrong with a refused body, not just "Invalid request body".
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigateway.ResponseType.BAD_REQUEST_BODY,
            templates={
                "application/json": '{"message": "Invalid request body: '
                '$util.escapeJavaScript($context.error.validationErrorString)"}'
            },
        )
        integration = apigateway.LambdaIntegration(handler.function)
        validator = self.api.add_request_validator(
            "Requests", validate_request_body=True, validate_request_parameters=True
        )
        collection = self.api.root.add_resource("bookings")
        collection.add_method(
            "POST",
            integration,
            request_models={"application/json": self.api.add_model("Booking", schema=json_schema(schema))},
            request_validator=validator,
        )
        collection.add_resource("{booking_id}").add_method(
            "GET",
            integration,
            request_parameters={"method.request.path.booking_id": True},
            request_validator=validator,
        )
        Validations.of(self).acknowledge(
            Acknowledgment(
                id="cdk-validator-cfnguard::lambda_function_public_access_prohibited_check",
                reason="API Gateway may invoke the function only from this API's own methods: each permission's "
                "SourceArn names one (built with Fn::Join, which the Guard rule cannot read).",
            ),
            Acknowledgment(
                id="AwsSolutions-APIG3",
                reason="Every route requires IAM-signed requests; a WAF web ACL is an account-wide choice to add.",
            ),
            Acknowledgment(
                id="AwsSolutions-COG4",
                reason="Callers are AWS principals (services, operators) authorized by IAM, not Cognito users.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                reason="The account-level role API Gateway logs with; this managed policy is what AWS prescribes.",
            ),
        )
