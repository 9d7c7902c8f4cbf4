"""CloudWatch metrics written as log lines in the embedded metric format: Lambda sends standard output to CloudWatch
Logs, which turns each such line into a metric data point without any API call or IAM permission
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

NAMESPACE = "IoTDR"
REPLICATION_LAG = "ReplicationLag"
REPLICATION_LAG_DIMENSION = "StateTable"


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


# Event times before this (ms) are in seconds: 10**11 ms is 1973, 10**11 s is far in the future.
_SECONDS_BEFORE = 10**11


def source_time_ms(event: Mapping[str, Any]) -> int | None:
    """When the source change happened in the primary, in epoch ms: ``receivedAt`` (the topic rule's ``timestamp()``
    on shadow items) or ``timestamp`` (registry events, snapshots and reconciliation items); None when neither is a
    number."""
    for field in ("receivedAt", "timestamp"):
        value = event.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value * 1000) if value < _SECONDS_BEFORE else int(value)
    return None


def replication_lag(state_table: str, event: Mapping[str, Any], stream: TextIO | None = None) -> float | None:
    """Write ``ReplicationLag`` (ms) for an event just applied in the secondary: now minus its source time (see
    ``source_time_ms``), for ``state_table`` (the secondary's ledger table, one per deployment): the metric the
    stack's ReplicationLagAlarm watches. Returns the lag in ms, or None (nothing written) without a source time."""
    source = source_time_ms(event)
    if source is None:
        return None
    lag = max(0.0, time.time() * 1000 - source)
    print(
        emf_line(REPLICATION_LAG, lag, {REPLICATION_LAG_DIMENSION: state_table}, unit="Milliseconds"),
        file=stream or sys.stdout,
        flush=True,
    )
    return lag
