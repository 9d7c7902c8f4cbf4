"""The metrics behind the secondary's dashboard and alarms: the replication lag the workers write, the drift the
reconciliation writes, and the local cloud turning their embedded-metric-format lines into CloudWatch data points,
as CloudWatch Logs does for a Lambda function's output."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from iot_dr.core import metrics
from iot_dr_local import emf_metrics
from iot_dr_local.drill.lag_metric import read_lag_metric

ACCOUNT, REGION = "123456789012", "us-west-2"


@pytest.mark.parametrize(
    ("event", "expected_ms"),
    [
        ({"eventType": "SHADOW_EVENT", "receivedAt": 1_700_000_000_123}, 1_700_000_000_123),
        ({"eventType": "THING_EVENT", "timestamp": 1_700_000_000_456}, 1_700_000_000_456),
        # A time in seconds (a shadow document's own timestamp) is taken as seconds, not as 1970.
        ({"timestamp": 1_700_000_000}, 1_700_000_000_000),
        ({"eventType": "THING_EVENT"}, None),
        ({"timestamp": True}, None),
    ],
)
def test_the_source_time_is_the_rule_or_registry_time_in_milliseconds(event: dict, expected_ms: int | None) -> None:
    assert metrics.source_time_ms(event) == expected_ms


def test_the_lag_of_an_applied_event_is_written_for_the_state_table() -> None:
    out = io.StringIO()
    source = int(time.time() * 1000) - 2500
    before = time.time() * 1000

    lag = metrics.replication_lag("IoTDRStateTable", {"receivedAt": source}, out)

    document = json.loads(out.getvalue())
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "IoTDR",
        "Dimensions": [["StateTable"]],
        "Metrics": [{"Name": "ReplicationLag", "Unit": "Milliseconds"}],
    }
    assert document["StateTable"] == "IoTDRStateTable"
    assert document["ReplicationLag"] == lag
    assert before - source <= lag <= time.time() * 1000 - source
    assert metrics.replication_lag("IoTDRStateTable", {"eventType": "THING_EVENT"}, out) is None
    assert out.getvalue().count("\n") == 1


@mock_aws
def test_emf_lines_of_a_function_become_cloudwatch_data_points_the_drill_reads_back() -> None:
    out = io.StringIO()
    now = int(time.time() * 1000)
    metrics.replication_lag("ledger", {"receivedAt": now - 1000}, out)
    metrics.replication_lag("ledger", {"receivedAt": now - 3000}, out)
    metrics.replication_lag("another-deployment", {"receivedAt": now - 9000}, out)
    output = "START RequestId: x\n" + out.getvalue() + '{"_aws": "not a directive"}\nnot json {"_aws"\n'

    assert emf_metrics.record(ACCOUNT, REGION, output) == 3

    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stats = cloudwatch.get_metric_statistics(
        Namespace="IoTDR",
        MetricName="ReplicationLag",
        Dimensions=[{"Name": "StateTable", "Value": "ledger"}],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=60,
        Statistics=["SampleCount", "Maximum"],
    )["Datapoints"]
    assert sum(point["SampleCount"] for point in stats) == 2
    assert 3000 <= max(point["Maximum"] for point in stats) < 60_000

    figures = read_lag_metric(cloudwatch, "ledger", time.time() - 60, time.time())
    assert figures["samples"] == 2
    assert 1000 <= figures["average_ms"] <= figures["max_ms"]
    assert boto3.client("cloudwatch", region_name="us-east-1").list_metrics()["Metrics"] == []
