"""The alarms and dashboard that tell a person the saga needs them."""

import json

import pytest
from aws_cdk.assertions import Match, Template


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.template


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def logical_id(template: dict, kind: str) -> str:
    (name,) = resources(template, kind)
    return name


def _alarms(template: dict) -> dict[str, dict]:
    """Alarm properties by the alarm's construct id (its logical id's prefix: Alarms<Name>...)."""
    return {
        name.removeprefix("Alarms")[: -len("XXXXXXXX")]: body["Properties"]
        for name, body in resources(template, "AWS::CloudWatch::Alarm").items()
    }


def test_every_alarm_pages_the_topic_on_the_first_occurrence(template):
    topic = logical_id(template, "AWS::SNS::Topic")
    alarms = _alarms(template)

    assert set(alarms) == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
        "CompensationFailed",
        "CompensationParked",
        "BookingsReleased",
        "ReconcilerErrors",
        "ReconcilerEventsParked",
    }
    for name, alarm in alarms.items():
        assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["Period"]) == (1, 1, 60), name
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmActions"] == [{"Ref": topic}], name


def test_the_state_machine_alarms_watch_its_failures_timeouts_and_stops(template):
    machine = logical_id(template, "AWS::StepFunctions::StateMachine")
    alarms = _alarms(template)
    for name in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        assert (alarms[name]["Namespace"], alarms[name]["MetricName"]) == ("AWS/States", name)
        assert alarms[name]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]


def test_the_queue_alarms_watch_parked_bookings_and_events_the_reconciler_could_not_handle(template):
    queues = {name: body for name, body in resources(template, "AWS::SQS::Queue").items()}
    parking = next(name for name in queues if name.startswith("ParkingCompensationDeadLetters"))
    failures = next(name for name in queues if name.startswith("ReconcilerFailures"))
    alarms = _alarms(template)

    parked = alarms["CompensationParked"]
    assert (parked["MetricName"], parked["Statistic"]) == ("ApproximateNumberOfMessagesVisible", "Maximum")
    assert parked["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [parking, "QueueName"]}}]
    assert "saga replay" in parked["AlarmDescription"]
    # each parked booking sends exactly one dead-letter message: one alarm per partly undone booking
    partly_undone = alarms["CompensationFailed"]
    assert (partly_undone["MetricName"], partly_undone["Statistic"]) == ("NumberOfMessagesSent", "Sum")
    assert partly_undone["Dimensions"] == parked["Dimensions"]
    unhandled = alarms["ReconcilerEventsParked"]
    assert unhandled["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [failures, "QueueName"]}}]


def test_the_reconciler_alarms_count_every_reconciliation_and_every_error(template):
    alarms = _alarms(template)
    released = alarms["BookingsReleased"]
    assert (released["Namespace"], released["MetricName"], released["Statistic"]) == (
        "BookingSaga",
        "BookingsReleased",
        "Sum",
    )
    assert released["Dimensions"] == [{"Name": "service", "Value": "reconciler"}]
    errors = alarms["ReconcilerErrors"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")


def test_the_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(template):
    """CloudWatch cannot publish to a topic encrypted with the AWS-managed key alias/aws/sns (its key policy
    does not let CloudWatch use it): the stack's own key must, for this account only."""
    topic = logical_id(template, "AWS::SNS::Topic")
    key = logical_id(template, "AWS::KMS::Key")
    assert template["Resources"][topic]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    properties = template["Resources"][key]["Properties"]
    assert properties["EnableKeyRotation"] is True
    (grant,) = [s for s in properties["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowAlarmPublishers"]
    assert grant["Effect"] == "Allow"
    assert sorted(grant["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert sorted(grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_topic_lets_cloudwatch_alarms_of_this_account_publish_over_tls_only(template):
    topic = logical_id(template, "AWS::SNS::Topic")
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s.get("Sid") == "AllowAlarmPublishers"]
    assert allow["Effect"] == "Allow" and allow["Action"] == "sns:Publish"
    assert sorted(allow["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert allow["Resource"] == {"Ref": topic}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arns = json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
    assert ":cloudwatch:" in source_arns and ":alarm:*" in source_arns
    Template.from_json(template).has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_the_email_subscription_exists_only_when_an_address_is_given(template):
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    condition = template["Conditions"][subscription["Condition"]]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_the_dashboard_shows_bookings_duration_and_parked_compensations(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionTime", "p95",
                   "ApproximateNumberOfMessagesVisible", "NumberOfMessagesSent", "ExecutionsAborted",
                   "ExecutionsTimedOut", "BookingsReleased", "BookingsParked"):  # fmt: skip
        assert needle in body, needle
    # compensated = failed, less those that ended CompensationFailed (one dead-letter message each)
    assert "failed - FILL(partly, 0)" in body and '"label\\":\\"compensated\\"' in body


def test_the_dashboard_shows_the_handlers_compensation_metrics_by_step(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("CompensationsRun", "CompensationFailures"):
        # the namespace the stack gives Powertools (POWERTOOLS_METRICS_NAMESPACE), and its dimensions
        assert f"SEARCH('{{BookingSaga,service,step}} MetricName=\\\\\\\"{metric}\\\\\\\"', 'Sum', 60)" in body, metric
