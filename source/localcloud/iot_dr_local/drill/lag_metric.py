"""The replication-lag metric as CloudWatch holds it (``IoTDR``/``ReplicationLag`` per state table, written by the
secondary's workers, see ``iot_dr.core.metrics``): what the drill reports next to the lag it observed itself."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from iot_dr.core.metrics import NAMESPACE, REPLICATION_LAG, REPLICATION_LAG_DIMENSION

PERIOD = 60


def read_lag_metric(cloudwatch: Any, state_table: str, start: float, end: float) -> dict[str, Any]:
    """``ReplicationLag`` data points between ``start`` and ``end`` (epoch seconds, widened to whole minutes):
    ``{"samples": n, "average_ms": float|None, "max_ms": float|None, "state_table": ...}``. CloudWatch's statistics
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html)."""
    response = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=REPLICATION_LAG,
        Dimensions=[{"Name": REPLICATION_LAG_DIMENSION, "Value": state_table}],
        StartTime=datetime.fromtimestamp(math.floor(start / PERIOD) * PERIOD, UTC),
        EndTime=datetime.fromtimestamp(math.ceil(end / PERIOD) * PERIOD + PERIOD, UTC),
        Period=PERIOD,
        Statistics=["SampleCount", "Average", "Maximum"],
    )
    points = response["Datapoints"]
    samples = sum(int(point["SampleCount"]) for point in points)
    total = sum(point["Average"] * point["SampleCount"] for point in points)
    return {
        "metric": f"{NAMESPACE}/{REPLICATION_LAG}",
        "state_table": state_table,
        "samples": samples,
        "average_ms": total / samples if samples else None,
        "max_ms": max((point["Maximum"] for point in points), default=None),
    }
