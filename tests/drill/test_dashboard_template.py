"""The secondary region's dashboard shows the metrics its alarms watch, with the deployment's own resources."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cfnlint.decode import decode

TEMPLATE = (
    Path(__file__).resolve().parents[2] / "deployment" / "disaster-recovery-for-aws-iot-secondary-region.template"
)


def test_the_dashboard_charts_iterator_age_parked_events_and_workflow_failures_of_this_deployment() -> None:
    template, matches = decode(str(TEMPLATE))
    assert not matches
    resources = template["Resources"]
    dashboards = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert len(dashboards) == 1
    body = dashboards[0]["DashboardBody"]["Fn::Sub"]
    # Every ${Name} is a resource of this template or a pseudo parameter; the rest is valid JSON.
    names = set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", body))
    assert names - {"AWS::Region"} <= set(resources)
    widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9:]+\}", "x", body))["widgets"]
    charted = {(m[0], m[1], m[3]) for w in widgets for m in w["properties"]["metrics"]}
    assert charted == {
        ("AWS/Lambda", "IteratorAge", "x"),
        ("IoTDR", "ParkedEvents", "x"),
        ("AWS/States", "ExecutionsFailed", "x"),
        ("AWS/States", "ExecutionsTimedOut", "x"),
    }
    assert {"DynamoTriggerFunction", "DeadLetterTable", "ReplicationStateMachine"} <= names
