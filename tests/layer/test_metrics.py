"""Parked events are counted as an embedded-metric-format line, the metric the ParkedEventsAlarm watches."""

from __future__ import annotations

import io
import json

from iot_dr.core.metrics import count_parked_event


def test_a_parked_event_writes_one_emf_document_for_its_table() -> None:
    out = io.StringIO()

    count_parked_event("IoTDRSecondary-DeadLetters", out)

    document = json.loads(out.getvalue())
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "IoTDR",
        "Dimensions": [["DeadLetterTable"]],
        "Metrics": [{"Name": "ParkedEvents", "Unit": "Count"}],
    }
    assert document["ParkedEvents"] == 1
    assert document["DeadLetterTable"] == "IoTDRSecondary-DeadLetters"
    assert isinstance(document["_aws"]["Timestamp"], int)
