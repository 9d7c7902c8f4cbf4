"""AWS::CloudWatch::Alarm in the local cloud's CloudFormation: created with its metric and actions, deleted with its
stack."""

from __future__ import annotations

import boto3
import pytest
from stack_support import delete, deploy, outputs

REGION = "us-east-1"
TEMPLATE = {
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}},
        "DepthAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": "queue holds messages",
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Queue", "QueueName"]}}],
                "Statistic": "Maximum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "Topic"}],
                "OKActions": [{"Ref": "Topic"}],
            },
        },
    },
    "Outputs": {"Alarm": {"Value": {"Ref": "DepthAlarm"}}},
}


@pytest.mark.usefixtures("cloudformation_extensions")
def test_alarm_is_created_with_its_metric_and_topic_and_deleted_with_the_stack() -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stack = deploy(TEMPLATE, REGION)
    name = outputs(stack)["Alarm"]

    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    topic_arn = boto3.client("sns", region_name=REGION).list_topics()["Topics"][0]["TopicArn"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
    )
    assert alarm["Dimensions"][0]["Name"] == "QueueName" and alarm["Dimensions"][0]["Value"]
    assert alarm["AlarmActions"] == alarm["OKActions"] == [topic_arn]
    assert alarm["TreatMissingData"] == "notBreaching"

    delete(region=REGION)

    assert cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
