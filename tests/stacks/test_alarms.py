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


def test_four_alarms_page_the_topic_on_the_first_failure(template):
    topic = logical_id(template, "AWS::SNS::Topic")
    machine = logical_id(template, "AWS::StepFunctions::StateMachine")
    queue = logical_id(template, "AWS::SQS::Queue")
    alarms = {
        body["Properties"]["MetricName"]: body["Properties"]
        for body in resources(template, "AWS::CloudWatch::Alarm").values()
    }

    assert set(alarms) == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "NumberOfMessagesSent",
        "ApproximateNumberOfMessagesVisible",
    }
    for metric, alarm in alarms.items():
        assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["Period"]) == (1, 1, 60), metric
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", metric
        assert alarm["TreatMissingData"] == "notBreaching", metric
        assert alarm["AlarmActions"] == [{"Ref": topic}], metric
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        assert alarms[metric]["Namespace"] == "AWS/States"
        assert alarms[metric]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
    parked = alarms["ApproximateNumberOfMessagesVisible"]
    assert (parked["Namespace"], parked["Statistic"]) == ("AWS/SQS", "Maximum")
    assert parked["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert "saga replay" in parked["AlarmDescription"]
    # each CompensationFailed execution sends exactly one dead-letter message: one alarm per partly undone booking
    partly_undone = alarms["NumberOfMessagesSent"]
    assert (partly_undone["Namespace"], partly_undone["Statistic"]) == ("AWS/SQS", "Sum")
    assert partly_undone["Dimensions"] == parked["Dimensions"]
    assert "CompensationFailed" in partly_undone["AlarmDescription"]


def test_the_topic_is_encrypted_and_refuses_plain_http(template):
    topic = logical_id(template, "AWS::SNS::Topic")
    assert template["Resources"][topic]["Properties"]["KmsMasterKeyId"] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":kms:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":alias/aws/sns",
            ],
        ]
    }
    Template.from_json(template).has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
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
                   "ApproximateNumberOfMessagesVisible", "NumberOfMessagesSent"):  # fmt: skip
        assert needle in body, needle
    # compensated = failed, less those that ended CompensationFailed (one dead-letter message each)
    assert "failed - FILL(partly, 0)" in body and '"label\\":\\"compensated\\"' in body


def test_the_dashboard_shows_the_handlers_compensation_metrics_by_step(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("CompensationsRun", "CompensationFailures"):
        # the namespace the stack gives Powertools (POWERTOOLS_METRICS_NAMESPACE), and its dimensions
        assert f"SEARCH('{{BookingSaga,service,step}} MetricName=\\\\\\\"{metric}\\\\\\\"', 'Sum', 60)" in body, metric
