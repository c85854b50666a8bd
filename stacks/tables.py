"""Every DynamoDB table of the stack, built one way."""

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct


def saga_table(scope: Construct, construct_id: str, *, protected: bool) -> dynamodb.Table:
    """On demand, keyed by a string ``pk``, encrypted, with point-in-time recovery; a protected stage keeps it on
    stack deletion and turns on deletion protection."""
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        deletion_protection=protected,
        removal_policy=RemovalPolicy.RETAIN if protected else RemovalPolicy.DESTROY,
    )
