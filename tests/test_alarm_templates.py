"""Nothing fails silently: each regional stack alarms, through its KMS-encrypted SNS topic, on what needs an operator;
no queue drops a message before an alarm has warned about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

DEPLOYMENT = Path(__file__).resolve().parents[1] / "deployment"
SQS_MAX_RETENTION = 1_209_600  # 14 days, SQS's maximum


def load(name: str) -> dict[str, Any]:
    template, matches = decode(str(DEPLOYMENT / f"disaster-recovery-for-aws-iot-{name}.template"))
    assert not matches
    return dict(template)


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def watched(template: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(namespace, metric, what the first dimension refers to) of every alarm."""
    found = set()
    for alarm in alarms(template).values():
        value = alarm["Dimensions"][0]["Value"]
        target = value.get("Ref") or (value.get("Fn::GetAtt") or [""])[0] if isinstance(value, dict) else value
        found.add((alarm["Namespace"], alarm["MetricName"], str(target)))
    return found


@pytest.mark.parametrize("name", ["primary-region", "secondary-region", "r53-health-checker"])
def test_every_alarm_notifies_the_encrypted_topic_with_an_optional_email(name: str) -> None:
    template = load(name)
    topic = template["Resources"]["AlarmTopic"]["Properties"]

    assert topic["KmsMasterKeyId"] == {"Ref": "StackKey"}
    assert "AlarmEmail" in template["Parameters"] and template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert alarms(template)
    for alarm in alarms(template).values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
    key_statements = template["Resources"]["StackKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com" for s in key_statements)


def test_secondary_alarms_on_parked_events_queues_stream_lag_and_workflow_failures() -> None:
    found = watched(load("secondary-region"))

    assert {
        ("IoTDR", "ParkedEvents", "DeadLetterTable"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "TriggerFailureQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "TriggerFailureQueue"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "JITRDeadLetterQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "JITRDeadLetterQueue"),
        ("AWS/Lambda", "IteratorAge", "DynamoTriggerFunction"),
    } <= found
    state_machines = {t for ns, metric, t in found if ns == "AWS/States"}
    assert state_machines, "no alarm on the workflow"
    assert {m for ns, m, _ in found if ns == "AWS/States"} == {"ExecutionsFailed", "ExecutionsTimedOut"}


def test_health_checker_alarms_on_its_answers_and_on_route53s_status_where_route53_publishes_it() -> None:
    template = load("r53-health-checker")
    found = watched(template)

    failing = alarms(template)["HealthCheckFailingAlarm"]
    assert (failing["Namespace"], failing["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    assert {d["Name"] for d in failing["Dimensions"]} == {"ApiName", "Stage"}
    assert ("AWS/Route53", "HealthCheckStatus", "HealthCheck") in found
    assert template["Resources"]["Route53HealthCheckAlarm"]["Condition"] == "AlarmOnRoute53Status"


@pytest.mark.parametrize("name", ["primary-region", "secondary-region"])
def test_queues_keep_messages_for_the_maximum_and_warn_well_before_it_ends(name: str) -> None:
    template = load(name)
    queues = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::SQS::Queue"]
    age_alarms = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: a["Threshold"]
        for a in alarms(template).values()
        if a["MetricName"] == "ApproximateAgeOfOldestMessage"
    }

    assert queues
    for queue in queues:
        assert template["Resources"][queue]["Properties"]["MessageRetentionPeriod"] == SQS_MAX_RETENTION
        assert int(age_alarms[queue]) <= SQS_MAX_RETENTION - 3 * 86_400, f"{queue}: warn at least 3 days ahead"
