"""The stack's tables, log groups and dead-letter queues, each built one way, with the findings they always raise
acknowledged once, here."""

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def saga_table(scope: Construct, construct_id: str, *, protected: bool, sorted_by: str | None = None) -> dynamodb.Table:
    """On demand, keyed by a string ``pk`` (and ``sorted_by``, a string sort key, if named), encrypted, with
    point-in-time recovery; a protected stage keeps it on stack deletion and turns on deletion protection."""
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=sorted_by, type=dynamodb.AttributeType.STRING) if sorted_by else None,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        deletion_protection=protected,
        removal_policy=RemovalPolicy.RETAIN if protected else RemovalPolicy.DESTROY,
    )


def saga_log_group(scope: Construct, construct_id: str, *, removal: RemovalPolicy) -> logs.LogGroup:
    """A month of logs: operational lines (booking ids, steps, errors), not records anyone must keep."""
    group = logs.LogGroup(scope, construct_id, retention=LOG_RETENTION, removal_policy=removal)
    Validations.of(group).acknowledge(
        Acknowledgment(
            id="cdk-validator-cfnguard::cloudwatch_log_group_retention_period_check",
            reason="Operational logs kept a month; the tables and the bookings table are the record, not the logs.",
        ),
        Acknowledgment(
            id="cdk-validator-cfnguard::cloudwatch_log_group_encrypted_check",
            reason="CloudWatch Logs encrypts every log group at rest; these lines carry no secrets, so a key of "
            "the stack's own would add cost and a key policy to keep right, and protect nothing more.",
        ),
    )
    return group


def dead_letters(scope: Construct, construct_id: str, *, removal: RemovalPolicy, holds: str) -> sqs.Queue:
    """A queue for what must wait for a person (``holds`` says what): encrypted, TLS only, kept two weeks, and
    never anyone's redrive target. It has no dead-letter queue of its own: it is one."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.DENY_ALL),
        removal_policy=removal,
    )
    itself = f"This queue is itself a dead-letter queue: it holds {holds} for an operator."
    Validations.of(queue).acknowledge(
        Acknowledgment(id="AwsSolutions-SQS3", reason=itself),
        Acknowledgment(id="Serverless-SQSRedrivePolicy", reason=itself),
        Acknowledgment(id="cdk-validator-cfnguard::sqs_dlq_check", reason=itself),
    )
    return queue
