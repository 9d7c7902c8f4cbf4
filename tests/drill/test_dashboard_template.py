"""The secondary region's dashboard shows the metrics its alarms watch, with the deployment's own resources, and the
stack alarms on replication lag and parked events."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cfnlint.decode import decode

TEMPLATE = (
    Path(__file__).resolve().parents[2] / "deployment" / "disaster-recovery-for-aws-iot-secondary-region.template"
)


def test_the_dashboard_charts_lag_iterator_age_parked_events_workflow_failures_and_drift_of_this_deployment() -> None:
    template, matches = decode(str(TEMPLATE))
    assert not matches
    resources = template["Resources"]
    dashboards = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert len(dashboards) == 1
    body = dashboards[0]["DashboardBody"]["Fn::Sub"]
    # Every ${Name} is a resource or parameter of this template or a pseudo parameter; the rest is valid JSON.
    names = set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", body))
    assert names - {"AWS::Region"} <= set(resources) | set(template["Parameters"])
    widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9:]+\}", "x", body))["widgets"]
    charted = {(m[0], m[1], m[3]) for w in widgets for m in w["properties"]["metrics"]}
    assert charted == {
        ("AWS/Lambda", "IteratorAge", "x"),
        ("IoTDR", "ParkedEvents", "x"),
        ("AWS/States", "ExecutionsFailed", "x"),
        ("AWS/States", "ExecutionsTimedOut", "x"),
        ("IoTDR", "ReplicationLag", "x"),
        ("IoTDR", "DevicesDrifted", "MissingDeviceReplication"),
        ("IoTDR", "ThingsOnlyInSecondary", "MissingDeviceReplication"),
    }
    assert {
        "DynamoTriggerFunction",
        "DeadLetterTable",
        "ReplicationStateMachine",
        "ReplicationStateTable",
    } <= names
    # Drift is found by the reconciliation in the primary: its widget reads the primary region's metrics.
    (drift,) = [w for w in widgets if w["properties"]["metrics"][0][1] == "DevicesDrifted"]
    assert drift["properties"]["region"] == "x"
    assert "${PrimaryRegion}" in body


def test_the_stack_alarms_on_replication_lag_and_parked_events_of_its_own_tables() -> None:
    template, _ = decode(str(TEMPLATE))
    alarms = {
        props["MetricName"]: props
        for props in (r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    }
    lag, parked = alarms["ReplicationLag"], alarms["ParkedEvents"]
    assert (lag["Namespace"], lag["Dimensions"]) == (
        "IoTDR",
        [{"Name": "StateTable", "Value": {"Ref": "ReplicationStateTable"}}],
    )
    assert lag["Statistic"] == "Maximum" and lag["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert parked["Dimensions"] == [{"Name": "DeadLetterTable", "Value": {"Ref": "DeadLetterTable"}}]
    for alarm in (lag, parked):
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
