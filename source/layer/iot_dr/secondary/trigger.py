"""The secondary's stream trigger: one Express workflow execution per stream batch, applying its items in waves.

A record that can never succeed (no image, not a DynamoDB image, unknown type) is parked at once with its
reason and never blocks the batch. The others go to the workflow in as few executions as its input limit
allows, run synchronously and side by side (``workflow.apply_items``). The records of an execution that could
not start, failed or timed out, and each record the workflow could neither apply nor park, are reported back
(``batchItemFailures``), so the event source mapping retries them, bisects the batch, and finally hands them to
its on-failure destination. Express workflows run at least once; the version ledger absorbs duplicates.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from iot_dr.core.aws import error_code
from iot_dr.core.dynamo_json import from_item
from iot_dr.core.errors import MalformedEvent
from iot_dr.core.event_types import EventType
from iot_dr.parking.dead_letters import STAGE_TRIGGER, DeadLetters
from iot_dr.secondary.workflow import WorkflowNotSucceeded, apply_items

if TYPE_CHECKING:
    from types_boto3_stepfunctions import SFNClient

LOG = logging.getLogger(__name__)

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Step Functions accepts at most 256 KiB of execution input
# (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html); the rest is headroom for the
# state machine's own fields.
MAX_INPUT_BYTES = 200_000


def workflow_input_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The workflow's input for one stream record: ``{eventType, event, record}``; MalformedEvent if impossible."""
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not image:
        raise MalformedEvent(f"stream record {record.get('eventID')} has no NewImage")
    try:
        event = from_item(image)
    except (TypeError, ValueError, KeyError) as err:
        raise MalformedEvent(f"stream record {record.get('eventID')} is not a DynamoDB image: {err}") from err
    try:
        event_type = EventType(event.get("eventType", ""))
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


def trigger_dead_letter_id(record: dict[str, Any]) -> str:
    """The eventID identifies a record for good; a record without one gets an ID of its own, never a shared one."""
    return f"{STAGE_TRIGGER}#{record.get('eventID') or uuid.uuid4()}"


def execution_name(sequence_number: str) -> str:
    """Names the execution after its first record, with a random part: a retried batch is a new execution (Express
    executions are not idempotent by name anyway, and the ledger absorbs what runs twice)."""
    return _NAME_UNSAFE.sub("-", f"batch-{sequence_number[-40:]}-{uuid.uuid4().hex[:12]}")[:80]


Pending = tuple[dict[str, Any], dict[str, Any]]  # (stream record, workflow input)


def chunks(items: list[Pending], limit: int = MAX_INPUT_BYTES) -> Iterator[list[Pending]]:
    """Consecutive groups of items whose workflow inputs, as JSON, stay within ``limit`` bytes together."""
    group: list[Pending] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item[1]).encode()) + 2
        if group and size + item_size > limit:
            yield group
            group, size = [], 0
        group.append(item)
        size += item_size
    if group:
        yield group


def handle_batch(
    sfn: SFNClient, dead_letters: DeadLetters, state_machine_arn: str, event: dict[str, Any]
) -> dict[str, Any]:
    """Handle one DynamoDB stream batch; returns ``{"batchItemFailures": [{"itemIdentifier": <sequence number>}]}``.

    ``sfn`` is a Step Functions client with ``workflow.SYNC_EXECUTION_CONFIG``. Returns when every execution has
    ended, so the function's timeout must outlast an Express execution (five minutes). A failure to park a
    malformed record is reported as that record's failure, so it is retried, not dropped.
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise MalformedEvent("not a DynamoDB stream batch: no Records list of objects")
    failures: list[dict[str, Any]] = []
    pending: list[Pending] = []
    for record in records:
        if record.get("eventName") == "REMOVE":
            # Items leave the table when their TTL expires; there is nothing to replicate.
            continue
        try:
            pending.append((record, workflow_input_from_record(record)))
        except MalformedEvent as err:
            if not _park(dead_letters, record, str(err), "MalformedEvent"):
                failures.append(record)
    groups = list(chunks(pending))
    if groups:
        # Side by side: the batch takes as long as its longest execution, whatever the number of groups.
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            for failed in pool.map(lambda group: _apply(sfn, dead_letters, state_machine_arn, group), groups):
                failures.extend(failed)
    return {"batchItemFailures": [{"itemIdentifier": _sequence_number(record)} for record in failures]}


def _apply(
    sfn: SFNClient, dead_letters: DeadLetters, state_machine_arn: str, group: list[Pending]
) -> list[dict[str, Any]]:
    """Run the workflow on one group; returns the records to report as failed."""
    items = [workflow_input for _, workflow_input in group]
    try:
        not_applied = apply_items(sfn, state_machine_arn, execution_name(_sequence_number(group[0][0])), items)
    except WorkflowNotSucceeded as err:
        LOG.error(
            "workflow execution did not succeed",
            extra={"records": len(group), "status": err.status, "error": err.error, "cause": err.cause[:500]},
        )
        return [record for record, _ in group]
    except Exception as err:
        # A record that alone makes the input invalid is parked: retrying cannot help.
        invalid = error_code(err) in ("InvalidExecutionInput", "ValidationException") and len(group) == 1
        if invalid and _park(dead_letters, group[0][0], str(err), error_code(err)):
            return []
        # Reported, not swallowed: the mapping retries (and bisects) these records and finally hands them on.
        LOG.exception("workflow not run", extra={"records": len(group)})
        return [record for record, _ in group]
    LOG.info(
        "workflow execution succeeded",
        extra={
            "items": len(items),
            "notApplied": len(not_applied),
            "eventTypes": sorted({str(item["eventType"]) for item in items}),
        },
    )
    return [group[index][0] for index in not_applied]


def _sequence_number(record: dict[str, Any]) -> str:
    return str((record.get("dynamodb") or {}).get("SequenceNumber", ""))


def _park(dead_letters: DeadLetters, record: dict[str, Any], reason: str, error_type: str) -> bool:
    """Park ``record`` at the trigger stage; False (logged) if the dead-letter table refused it."""
    try:
        dead_letters.park(trigger_dead_letter_id(record), STAGE_TRIGGER, reason, error_type, record)
    except Exception:
        LOG.exception("record could not be parked", extra={"sequenceNumber": _sequence_number(record)})
        return False
    return True
