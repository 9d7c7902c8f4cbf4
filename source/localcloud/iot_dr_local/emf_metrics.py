"""CloudWatch Logs' embedded-metric-format extraction for the local cloud's Lambda functions.

In AWS, a function's standard output goes to CloudWatch Logs, which turns every line that is an EMF document into
metric data points in the function's account and region
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
Here the Lambda runtime hands each invocation's new output to ``record``, which puts the metrics it finds into moto's
CloudWatch, so ``GetMetricStatistics`` and the stacks' alarms see what the functions emitted. Other lines, and
documents that do not follow the specification, are ignored, as CloudWatch Logs ignores them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from iot_dr_local.locking import SERVICE_LOCK

LOG = logging.getLogger(__name__)


def metric_data(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The ``(namespace, PutMetricData MetricDatum)`` pairs an EMF document declares; [] when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("_aws"), dict):
        return []
    metadata = document["_aws"]
    timestamp = metadata.get("Timestamp")
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(timestamp, int) or not isinstance(directives, list):
        return []
    # moto keeps data points' times as naive UTC datetimes and compares them with naive ones.
    at = datetime.fromtimestamp(timestamp / 1000, UTC).replace(tzinfo=None)
    data = []
    for directive in directives:
        if not isinstance(directive, dict) or not isinstance(directive.get("Namespace"), str):
            continue
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(document[name])} for name in dimension_set if name in document]
            if len(dimensions) != len(dimension_set):
                continue
            for metric in directive.get("Metrics") or []:
                name = metric.get("Name") if isinstance(metric, dict) else None
                value = document.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                datum = {"MetricName": name, "Value": float(value), "Dimensions": dimensions, "Timestamp": at}
                if metric.get("Unit"):
                    datum["Unit"] = metric["Unit"]
                data.append((directive["Namespace"], datum))
    return data


def record(account_id: str, region: str, output: str) -> int:
    """Put the metrics of every EMF line of ``output`` into ``region``'s CloudWatch; the number of data points."""
    points = []
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        try:
            points.extend(metric_data(json.loads(line)))
        except json.JSONDecodeError:
            continue
    if points:
        with SERVICE_LOCK.held():
            backend = cloudwatch_backends[account_id][region]
            for namespace, datum in points:
                backend.put_metric_data(namespace, [datum])
    return len(points)
