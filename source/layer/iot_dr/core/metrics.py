"""CloudWatch metrics written as log lines in the embedded metric format: Lambda sends standard output to CloudWatch
Logs, which turns each such line into a metric data point without any API call or IAM permission
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

NAMESPACE = "IoTDR"


def emf_line(metric: str, value: float, dimensions: dict[str, str], unit: str = "Count") -> str:
    """One embedded-metric-format document: ``metric`` = ``value`` with ``dimensions``, timestamped now (ms)."""
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": metric, "Unit": unit}],
                }
            ],
        },
        metric: value,
        **dimensions,
    }
    return json.dumps(document, sort_keys=True)


def count_parked_event(dead_letter_table: str, stream: TextIO | None = None) -> None:
    """Add one to ``ParkedEvents`` for ``dead_letter_table``: the metric the stack's ParkedEventsAlarm watches."""
    print(emf_line("ParkedEvents", 1, {"DeadLetterTable": dead_letter_table}), file=stream or sys.stdout, flush=True)
