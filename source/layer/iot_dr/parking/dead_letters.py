"""Parked events: every event that could not be applied ends here, visible to operators and replayable."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iot_dr.core.aws import error_code
from iot_dr.core.metrics import count_parked_event

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_sqs import SQSClient

LOG = logging.getLogger(__name__)

STAGE_TRIGGER = "trigger"
STAGE_WORKFLOW = "workflow"


@dataclass(frozen=True)
class DeadLetter:
    """One parked event: its id, the ``stage`` that parked it, the ``reason`` and ``error_type`` of the failure,
    ``parked_at`` (ms since the epoch) and the ``payload`` that failed (the workflow input or the stream record)."""

    dead_letter_id: str
    stage: str
    reason: str
    error_type: str
    parked_at: int
    payload: dict[str, Any]

    @property
    def event_type(self) -> str:
        """The payload's ``eventType`` (empty when it has none)."""
        return str(self.payload.get("eventType", ""))


class DeadLetters:
    """Items: ``deadLetterId`` (key), ``stage``, ``reason``, ``errorType``, ``parkedAt`` (ms), ``payload`` (JSON)."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def park(self, dead_letter_id: str, stage: str, reason: str, error_type: str, payload: dict[str, Any]) -> None:
        """Put one dead letter (PutItem). ``reason`` is cut to 4,000 characters and the payload bounded to fit
        DynamoDB's 400 KB item limit
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
        botocore's ``ClientError`` propagates so the caller can fall back to its queue."""
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "deadLetterId": {"S": dead_letter_id},
                "stage": {"S": stage},
                "reason": {"S": reason[:4000] or "unknown"},
                "errorType": {"S": error_type or "unknown"},
                "parkedAt": {"N": str(int(time.time() * 1000))},
                "payload": {"S": _bounded_payload(payload)},
            },
        )
        count_parked_event(self._table)
        LOG.warning(
            "event parked",
            extra={"deadLetterId": dead_letter_id, "stage": stage, "errorType": error_type, "reason": reason[:500]},
        )

    def __iter__(self) -> Iterator[DeadLetter]:
        paginator = self._dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True):
            for item in page.get("Items", []):
                yield DeadLetter(
                    dead_letter_id=item["deadLetterId"]["S"],
                    stage=item["stage"]["S"],
                    reason=item["reason"]["S"],
                    error_type=item["errorType"]["S"],
                    parked_at=int(item["parkedAt"]["N"]),
                    payload=json.loads(item["payload"]["S"]),
                )

    def remove(self, letter: DeadLetter) -> None:
        """Delete ``letter`` unless it was parked again since it was read (a replay that failed once more)."""
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key={"deadLetterId": {"S": letter.dead_letter_id}},
                ConditionExpression="parkedAt = :parkedAt",
                ExpressionAttributeValues={":parkedAt": {"N": str(letter.parked_at)}},
            )
        except Exception as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise


def workflow_dead_letter_id(park_input: dict[str, Any]) -> str:
    """One ID per stream record (its eventID), so a record parked twice keeps one dead letter and two records never
    share one; an item without an eventID gets the execution and its Map index, or a fresh ID."""
    event_id = ((park_input.get("event") or {}).get("record") or {}).get("eventID")
    if event_id:
        return f"{STAGE_WORKFLOW}#{event_id}"
    execution, index = park_input.get("executionArn"), park_input.get("itemIndex")
    if execution and index is not None:
        return f"{STAGE_WORKFLOW}#{execution}#{index}"
    return f"{STAGE_WORKFLOW}#{uuid.uuid4()}"


# DynamoDB items hold at most 400 KB; the rest of the item is small.
MAX_PAYLOAD_CHARS = 350_000


def _bounded_payload(payload: dict[str, Any]) -> str:
    """The payload as JSON, or, when it would not fit in an item, its start marked as truncated (still parked)."""
    text = json.dumps(payload, sort_keys=True)
    if len(text.encode()) <= MAX_PAYLOAD_CHARS:
        return text
    return json.dumps({"truncated": True, "originalChars": len(text), "start": text[: MAX_PAYLOAD_CHARS // 2]})


def park_failed_execution(dead_letters: DeadLetters, park_input: dict[str, Any]) -> dict[str, str]:
    """Park what the workflow's Catch hands over: ``{"event": <item input + "error": {Error, Cause}>,
    "executionArn": ..., "itemIndex": <Map index>}``; returns ``{"deadLetterId": ...}``."""
    if not isinstance(park_input, dict) or not isinstance(park_input.get("event") or {}, dict):
        # Whatever else arrives is parked too, as it came, so nothing handed to this function is lost.
        park_input = {"event": {"unexpectedParkInput": park_input, "error": {"Error": "MalformedEvent"}}}
    event = dict(park_input.get("event") or {})
    error = event.pop("error", None)
    error = error if isinstance(error, dict) else {"Cause": str(error or "")}
    cause = str(error.get("Cause", ""))
    try:
        reason = str(json.loads(cause).get("errorMessage", cause))
    except (ValueError, AttributeError):
        reason = cause
    dead_letter_id = workflow_dead_letter_id(park_input)
    dead_letters.park(dead_letter_id, STAGE_WORKFLOW, reason, str(error.get("Error", "")), event)
    return {"deadLetterId": dead_letter_id}


def park_with_fallback(
    dead_letters: DeadLetters, sqs: SQSClient, fallback_queue_url: str, park_input: dict[str, Any]
) -> dict[str, str]:
    """``park_failed_execution``; if the table refuses, the same dead letter goes to ``fallback_queue_url`` as
    ``{"deadLetter": {deadLetterId, stage, reason, errorType, payload}}`` (``parked_queues.PARKED_ITEM``).

    Raises only if both refuse, so the workflow retries.
    """
    try:
        return park_failed_execution(dead_letters, park_input)
    except Exception:
        LOG.exception("dead-letter table refused the dead letter; sending it to the fallback queue")
    event = dict(park_input.get("event") or {})
    error = event.pop("error", None) or {}
    letter: dict[str, Any] = {
        "deadLetterId": workflow_dead_letter_id(park_input),
        "stage": STAGE_WORKFLOW,
        "reason": str(error.get("Cause", ""))[:4000] or "unknown",
        "errorType": str(error.get("Error", "")) or "unknown",
        "payload": event,
    }
    sqs.send_message(QueueUrl=fallback_queue_url, MessageBody=json.dumps({"deadLetter": letter}))
    return {"deadLetterId": letter["deadLetterId"]}
