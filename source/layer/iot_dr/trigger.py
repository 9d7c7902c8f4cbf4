"""The secondary's stream trigger: one Step Functions execution per replication item.

Only the records that fail are reported back (``batchItemFailures``), so the event source mapping retries
them alone and, once its retries are used up, sends them to its on-failure queue. Records that can never
succeed (no image, unknown type) are parked at once instead of blocking the shard.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from iot_dr.aws import error_code
from iot_dr.dead_letters import STAGE_TRIGGER, DeadLetters
from iot_dr.dynamo_json import from_item
from iot_dr.errors import MalformedEvent
from iot_dr.event_types import EventType

LOG = logging.getLogger(__name__)

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def workflow_input_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The state machine's input for one stream record, or MalformedEvent."""
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not image:
        raise MalformedEvent(f"stream record {record.get('eventID')} has no NewImage")
    try:
        event = from_item(image)
    except (TypeError, ValueError, KeyError) as err:
        raise MalformedEvent(f"stream record {record.get('eventID')} is not a DynamoDB image: {err}") from err
    try:
        event_type = EventType(event.get("eventType"))
    except ValueError as err:
        raise MalformedEvent(f"unknown eventType {event.get('eventType')!r}") from err
    return {
        "eventType": str(event_type),
        "event": event,
        "record": {
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "sequenceNumber": (record.get("dynamodb") or {}).get("SequenceNumber"),
            "eventSourceARN": record.get("eventSourceARN"),
        },
    }


def execution_name(record: dict[str, Any], event_type: str) -> str:
    """Deterministic per stream record, so a redelivered record cannot start a second execution."""
    return _NAME_UNSAFE.sub("-", f"{event_type[:40]}-{record.get('eventID', '')}")[:80]


def handle_batch(sfn: Any, dead_letters: DeadLetters, state_machine_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise MalformedEvent("not a DynamoDB stream batch: no Records list")
    failures: list[dict[str, str]] = []
    for record in records:
        if not isinstance(record, dict):
            raise MalformedEvent("a stream record is not an object")
        sequence_number = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            _start(sfn, dead_letters, state_machine_arn, record)
        except Exception:
            # Reported, not swallowed: the mapping retries this record and finally hands it to its on-failure queue.
            LOG.exception("record failed", extra={"sequenceNumber": sequence_number})
            failures.append({"itemIdentifier": sequence_number})
    return {"batchItemFailures": failures}


def _start(sfn: Any, dead_letters: DeadLetters, state_machine_arn: str, record: dict[str, Any]) -> None:
    if record.get("eventName") == "REMOVE":
        # Items leave the table when their TTL expires; there is nothing to replicate.
        LOG.debug("removal ignored", extra={"eventID": record.get("eventID")})
        return
    try:
        workflow_input = workflow_input_from_record(record)
    except MalformedEvent as err:
        dead_letters.park(f"{STAGE_TRIGGER}#{record.get('eventID')}", STAGE_TRIGGER, str(err), "MalformedEvent", record)
        return
    try:
        sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=execution_name(record, workflow_input["eventType"]),
            input=json.dumps(workflow_input),
        )
    except Exception as err:
        if error_code(err) == "ExecutionAlreadyExists":
            LOG.info("duplicate record", extra={"eventID": record.get("eventID")})
            return
        if error_code(err) in ("InvalidExecutionInput", "ValidationException"):
            dead_letters.park(
                f"{STAGE_TRIGGER}#{record.get('eventID')}", STAGE_TRIGGER, str(err), error_code(err), record
            )
            return
        raise
    LOG.info(
        "execution started",
        extra={"eventType": workflow_input["eventType"], "eventID": record.get("eventID")},
    )
