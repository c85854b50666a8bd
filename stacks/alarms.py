"""What tells a person the saga needs them: alarms on failed, timed-out, aborted, parked and reconciled bookings
and on the reconciler itself; a dashboard.

Every alarm publishes to one SNS topic; the ``AlarmEmail`` stack parameter subscribes an address to it
(``cdk deploy --parameters AlarmEmail=ops@example.com``). The topic is encrypted with a key of the stack's own:
CloudWatch cannot use the AWS-managed ``alias/aws/sns`` key, so alarms on a topic encrypted with it change
state and tell nobody. The key's policy and the topic's let CloudWatch (and EventBridge) in, for this account
only.
"""

from aws_cdk import Acknowledgment, CfnCondition, CfnParameter, Duration, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PERIOD = Duration.minutes(1)
# The services that publish to the topic: CloudWatch for alarms, EventBridge for rules that notify.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class SagaAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        dead_letter_queue: sqs.Queue,
        reconciler: lambda_.IFunction,
        reconciler_failures: sqs.Queue,
        removal: RemovalPolicy,
    ):
        super().__init__(scope, construct_id)
        self.topic = alarm_topic(self, removal)
        namespace = Stack.of(scope).stack_name

        parked = dead_letter_queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
        # Every CompensationFailed execution parks itself with one dead-letter message first, and so does the
        # reconciler: each one sent is one partly undone booking (the depth alarm stays on while any is parked).
        partly_undone = dead_letter_queue.metric_number_of_messages_sent(period=PERIOD, statistic="Sum")
        failed = state_machine.metric_failed(period=PERIOD)
        aborted = state_machine.metric_aborted(period=PERIOD)
        released = _reconciler_metric(namespace, "BookingsReleased")
        reconciler_errors = reconciler.metric_errors(period=PERIOD)
        unhandled = reconciler_failures.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        for name, metric, description in (
            ("ExecutionsFailed", failed, "bookings failed (compensated, parked, or for the reconciler)"),
            ("ExecutionsTimedOut", state_machine.metric_timed_out(period=PERIOD), "bookings that hit the 30 min limit"),
            ("ExecutionsAborted", aborted, "bookings stopped by someone: the reconciler releases what they held"),
            ("CompensationFailed", partly_undone, "a booking is partly undone and parked: run `saga replay`"),
            ("CompensationParked", parked, "a compensation is parked in the dead-letter queue: run `saga replay`"),
            ("BookingsReleased", released, "the reconciler released a booking that ended where no catch saw it"),
            ("ReconcilerErrors", reconciler_errors, "the reconciler failed; Lambda retries it, then parks the event"),
            (
                "ReconcilerEventsParked",
                unhandled,
                "a booking's end was not reconciled: its event waits on the reconciler's failure queue "
                "(docs/recovery.md)",
            ),
        ):
            alarm = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(actions.SnsAction(self.topic))

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Bookings",
                left=[
                    state_machine.metric_started(period=PERIOD, label="started"),
                    state_machine.metric_succeeded(period=PERIOD, label="confirmed"),
                    cloudwatch.MathExpression(
                        expression="failed - FILL(partly, 0)",
                        using_metrics={"failed": failed, "partly": partly_undone},
                        label="compensated",
                        period=PERIOD,
                    ),
                    partly_undone.with_(label="parked"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Ends no catch saw",
                left=[
                    state_machine.metric_timed_out(period=PERIOD, label="timed out"),
                    aborted.with_(label="aborted"),
                    released.with_(label="released by the reconciler"),
                    _reconciler_metric(namespace, "BookingsParked").with_(label="parked by the reconciler"),
                    reconciler_errors.with_(label="reconciler errors"),
                    unhandled.with_(label="events not reconciled"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Booking duration",
                left=[state_machine.metric_time(period=PERIOD, statistic="p95", label="p95")],
            ),
            cloudwatch.GraphWidget(title="Parked compensations", left=[parked]),
            cloudwatch.GraphWidget(
                title="Compensations by step",
                left=[
                    _by_step(scope, "CompensationsRun", "{step}"),
                    _by_step(scope, "CompensationFailures", "{step} failed"),
                ],
            ),
        )


def alarm_topic(owner: Construct, removal: RemovalPolicy) -> sns.Topic:
    """The encrypted topic every alarm of ``owner``'s stack publishes to, with the optional email subscription
    (the stack's ``AlarmEmail`` parameter)."""
    stack = Stack.of(owner)
    key = kms.Key(
        owner,
        "TopicKey",
        description="Encrypts the saga's alarm topic; CloudWatch and EventBridge may use it to publish",
        enable_key_rotation=True,
        removal_policy=removal,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowAlarmPublishers",
            principals=[iam.ServicePrincipal(service) for service in PUBLISHERS],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="GrantsOnlyForAwsServices",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions={"BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}},
        )
    )
    topic = sns.Topic(owner, "Topic", master_key=key, enforce_ssl=True)
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowAlarmPublishers",
            principals=[iam.ServicePrincipal(service) for service in PUBLISHERS],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {
                    "aws:SourceArn": [
                        f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*",
                        f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/*",
                    ]
                },
            },
        )
    )
    email = CfnParameter(
        stack,
        "AlarmEmail",
        default="",
        description="Address the saga's alarms are sent to (none if empty; confirm the subscription email).",
    )
    subscription = sns.CfnSubscription(
        owner, "EmailSubscription", topic_arn=topic.topic_arn, protocol="email", endpoint=email.value_as_string
    )
    subscription.cfn_options.condition = CfnCondition(
        owner, "HasAlarmEmail", expression=Fn.condition_not(Fn.condition_equals(email.value_as_string, ""))
    )
    Validations.of(subscription).acknowledge(
        Acknowledgment(
            id="Serverless-SNSRedrivePolicy",
            reason="SNS retries email delivery; an alarm it could not deliver still stands in CloudWatch (its "
            "state, history and the dashboard), where a queue of undelivered alarms would help nobody.",
        )
    )
    return topic


def _reconciler_metric(namespace: str, name: str) -> cloudwatch.Metric:
    """A count the reconciler's Powertools metrics publish, in the stack's namespace, by its service."""
    return cloudwatch.Metric(
        namespace=namespace, metric_name=name, dimensions_map={"service": "reconciler"}, period=PERIOD, statistic="Sum"
    )


def _by_step(scope: Construct, metric: str, label: str) -> cloudwatch.MathExpression:
    """The handlers' own metric (Powertools, in the stack's namespace), one line per cancel step."""
    namespace = Stack.of(scope).stack_name
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{namespace},service,step}} MetricName=\"{metric}\"', 'Sum', {PERIOD.to_seconds()})",
        label=label.replace("{step}", "${PROP('Dim.step')}"),
        period=PERIOD,
    )
