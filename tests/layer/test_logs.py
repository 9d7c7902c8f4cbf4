"""Structured logs through Powertools for AWS Lambda: Lambda context keys, correlation id, never the event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

# Each case runs in a fresh interpreter: logging is configured once per process, as in a Lambda environment.
SCRIPT = r"""
import json, logging, sys
from iot_dr.core.logs import configure_logging, lambda_entry

class Context:
    function_name = "iot-dr-park-event"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:iot-dr-park-event"
    memory_limit_in_mb = 128
    aws_request_id = "request-1"
    log_group_name = "/aws/lambda/iot-dr-park-event"
    log_stream_name = "2026/11/30/[$LATEST]request-1"
    def get_remaining_time_in_millis(self):
        return 1000

@lambda_entry(correlation_id_path="event.uuid")
def handler(event, context):
    logging.getLogger("iot_dr.parking.dead_letters").warning("event parked", extra={"stage": "worker"})
    logging.getLogger("iot_dr.secondary.workers").debug("debug detail")
    return {"ok": True}

event = json.loads(sys.argv[1])
print(json.dumps({"result": handler(event, Context())}))
handler(event, Context())
handler(event, None)
configure_logging("DEBUG")
print(json.dumps({"rootHandlers": len(logging.getLogger().handlers)}))
"""

SECRET = "s3cr3t-health-check-value"


def run(event: dict[str, Any], **env: str) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(event)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert SECRET not in completed.stdout + completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines()]


EVENT = {
    "eventType": "THING_EVENT",
    "event": {"eventType": "THING_EVENT", "thingName": "sensor-1", "uuid": "item-42"},
    "record": {"eventID": "c81e728d9d4c2f636f067f89cc14862c", "eventName": "INSERT"},
    "headers": {"x-health-check-secret": SECRET},
}


def test_module_records_carry_the_lambda_context_and_the_correlation_id_from_the_event() -> None:
    lines = run(EVENT)
    parked = [line for line in lines if line.get("message") == "event parked"]
    assert len(parked) == 3
    first, warm, outside = parked
    assert first["level"] == "WARNING" and first["stage"] == "worker" and first["service"] == "iot-dr"
    assert first["function_name"] == "iot-dr-park-event"
    assert first["function_request_id"] == "request-1"
    assert first["correlation_id"] == "item-42"
    assert (first["cold_start"], warm["cold_start"]) == (True, False)
    # Called without a Lambda context (a script, a test), the handler still runs and logs, without context keys.
    assert "function_request_id" not in outside
    assert {"result": {"ok": True}} in lines


def test_debug_records_follow_log_level_and_configuration_happens_once() -> None:
    assert not [line for line in run(EVENT) if line.get("message") == "debug detail"]
    debug = [line for line in run(EVENT, LOG_LEVEL="DEBUG") if line.get("message") == "debug detail"]
    assert len(debug) == 3
    # A later configure_logging (another entry point in the same process) adds no second handler.
    assert {"rootHandlers": 1} in run(EVENT)


def test_the_event_is_never_logged_even_when_powertools_is_told_to() -> None:
    lines = run(EVENT, POWERTOOLS_LOGGER_LOG_EVENT="true", LOG_LEVEL="DEBUG")
    assert lines  # run() asserts the secret appears in no output
    assert not [line for line in lines if isinstance(line.get("message"), dict)]


def test_records_keep_the_spaced_json_the_tools_printed_before() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(EVENT)], capture_output=True, text=True, check=True, timeout=60
    )
    parked = next(line for line in completed.stdout.splitlines() if '"event parked"' in line)
    # Operators grep the tools' output for '"key": value'; Powertools' default serializer would write '"key":value'.
    assert '"stage": "worker"' in parked and '"level": "WARNING"' in parked
