"""What tells a person the saga needs them: alarms on failed, timed-out, partly undone and parked bookings; a dashboard.

Every alarm publishes to one SNS topic; the ``AlarmEmail`` stack parameter
subscribes an address to it (``cdk deploy --parameters AlarmEmail=ops@example.com``).
"""

from aws_cdk import CfnCondition, CfnParameter, Duration, Fn, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PERIOD = Duration.minutes(1)


class SagaAlarms(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, state_machine: sfn.StateMachine, dead_letter_queue: sqs.Queue
    ):
        super().__init__(scope, construct_id)
        email = CfnParameter(
            scope,
            "AlarmEmail",
            default="",
            description="Address the saga's alarms are sent to (none if empty; confirm the subscription email).",
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        subscription = sns.CfnSubscription(
            self, "EmailSubscription", topic_arn=self.topic.topic_arn, protocol="email", endpoint=email.value_as_string
        )
        subscription.cfn_options.condition = CfnCondition(
            self, "HasAlarmEmail", expression=Fn.condition_not(Fn.condition_equals(email.value_as_string, ""))
        )

        parked = dead_letter_queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
        # Every CompensationFailed execution parks itself with one dead-letter message first: each one sent is one
        # partly undone booking (the depth alarm stays in alarm while any is parked, this one fires for each).
        partly_undone = dead_letter_queue.metric_number_of_messages_sent(period=PERIOD, statistic="Sum")
        failed = state_machine.metric_failed(period=PERIOD)
        for name, metric, description in (
            ("ExecutionsFailed", failed, "bookings failed (compensated or parked)"),
            ("ExecutionsTimedOut", state_machine.metric_timed_out(period=PERIOD), "bookings that hit the 30 min limit"),
            (
                "CompensationFailed",
                partly_undone,
                "a booking ended CompensationFailed, partly undone: run `saga replay`",
            ),
            ("CompensationParked", parked, "a compensation is parked in the dead-letter queue: run `saga replay`"),
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
                    partly_undone.with_(label="compensation failed"),
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


def _by_step(scope: Construct, metric: str, label: str) -> cloudwatch.MathExpression:
    """The handlers' own metric (Powertools, in the stack's namespace), one line per cancel step."""
    namespace = Stack.of(scope).stack_name
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{namespace},service,step}} MetricName=\"{metric}\"', 'Sum', {PERIOD.to_seconds()})",
        label=label.replace("{step}", "${PROP('Dim.step')}"),
        period=PERIOD,
    )
