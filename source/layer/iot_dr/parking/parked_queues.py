"""The queues where AWS services park what the solution could not take, read and replayed by ``iot-dr``.

Three kinds of message end in a queue instead of the dead-letter table:

- ``rule-error``: a topic rule's action failed; the rule's error action sends ``{ruleName, topic,
  base64OriginalPayload, failures, ...}`` (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html).
  Replay rebuilds the item the rule would have written and puts it into the replication table's replica in the
  secondary region, where the stream picks it up (the primary need not be reachable).
- ``stream-on-failure``: the stream mapping gave up on a batch and sent a pointer to its records
  (``DDBStreamBatchInfo``, https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html). Replay
  reads the records from the stream (kept 24 hours) and starts the workflow for them.
- ``parked-item``: the workflow could not write a dead letter into the dead-letter table and sent it here
  (``{"deadLetter": {...}}``). Replay starts the workflow with its payload.
- ``function-event``: EventBridge or Lambda could not deliver an event to the capture or just-in-time
  registration function; the message body is the event. Replay invokes that function again with it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iot_dr.core.dynamo_json import to_item
from iot_dr.secondary.trigger import chunks, workflow_input_from_record
from iot_dr.secondary.workflow import apply_items

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodbstreams import DynamoDBStreamsClient
    from types_boto3_lambda import LambdaClient
    from types_boto3_sqs import SQSClient
    from types_boto3_stepfunctions import SFNClient

LOG = logging.getLogger(__name__)

RULE_ERROR, STREAM_ON_FAILURE, FUNCTION_EVENT = "rule-error", "stream-on-failure", "function-event"
PARKED_ITEM = "parked-item"
# How long a message read for replay stays invisible to other readers.
REPLAY_VISIBILITY_SECONDS = 120


@dataclass(frozen=True)
class QueuedLetter:
    """One parked message: ``kind`` (see the module docstring), what it holds and why it was parked."""

    queue_url: str
    message_id: str
    receipt_handle: str
    sent_at: int  # ms
    kind: str
    body: dict[str, Any]

    @property
    def letter_id(self) -> str:
        """``<kind>#<SQS message id>``: how an operator names this letter."""
        return f"{self.kind}#{self.message_id}"

    @property
    def event_type(self) -> str:
        """What failed, for the listing: the parked item's ``eventType``, ``SHADOW_EVENT`` or ``registry event`` for a
        topic rule's error action, the batch size of a stream's on-failure record, or the EventBridge detail-type."""
        if self.kind == PARKED_ITEM:
            return str(self.body["deadLetter"].get("payload", {}).get("eventType", ""))
        if self.kind == RULE_ERROR:
            return "SHADOW_EVENT" if "/shadow/" in str(self.body.get("topic")) else "registry event"
        if self.kind == STREAM_ON_FAILURE:
            return f"{self.body['DDBStreamBatchInfo'].get('batchSize', '?')} stream records"
        return str(self.body.get("detail-type") or "registration event")

    @property
    def reason(self) -> str:
        """Why it failed, as far as the message tells: the parked reason, the rule action's error messages
        (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html), the stream mapping's
        condition (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html), or a generic note."""
        if self.kind == PARKED_ITEM:
            return str(self.body["deadLetter"].get("reason", ""))
        if self.kind == RULE_ERROR:
            return "; ".join(str(f.get("errorMessage", "")) for f in self.body.get("failures", []))
        if self.kind == STREAM_ON_FAILURE:
            return f"stream mapping gave up: {self.body.get('requestContext', {}).get('condition', 'unknown')}"
        return "the function failed on this event after its retries"


def kind_of(body: dict[str, Any]) -> str:
    """The kind of an SQS message body: a parked item, a DynamoDB stream on-failure record (``DDBStreamBatchInfo``),
    a topic rule error action message (``base64OriginalPayload`` and ``ruleName``), or else a function's event."""
    if "deadLetter" in body:
        return PARKED_ITEM
    if "DDBStreamBatchInfo" in body:
        return STREAM_ON_FAILURE
    if "base64OriginalPayload" in body and "ruleName" in body:
        return RULE_ERROR
    return FUNCTION_EVENT


def read_queue(sqs: SQSClient, queue_url: str, visibility_seconds: int = 0) -> Iterator[QueuedLetter]:
    """Every message of the queue, once each. With ``visibility_seconds`` 0 reading changes nothing (listing)."""
    seen: set[str] = set()
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_seconds,
            WaitTimeSeconds=0,
            AttributeNames=["SentTimestamp"],
        )
        fresh = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = {"unreadable": message["Body"]}
            yield QueuedLetter(
                queue_url,
                message["MessageId"],
                message["ReceiptHandle"],
                int(message.get("Attributes", {}).get("SentTimestamp", 0)),
                kind_of(body) if isinstance(body, dict) else FUNCTION_EVENT,
                body if isinstance(body, dict) else {"unreadable": body},
            )


def item_from_rule_error(body: dict[str, Any], item_ttl_seconds: int) -> dict[str, Any]:
    """The replication item the failed rule would have written for the message in ``body``.

    Shadow messages keep their exact bytes (``document``); the receive time, which the error message does not
    carry, is the message's own ``timestamp`` (seconds) — it only breaks ties between equal shadow versions.
    Raises ValueError for a message that is not a shadow message or a registry event.
    """
    try:
        raw = base64.b64decode(str(body["base64OriginalPayload"]), validate=True)
        message = json.loads(raw)
    except (KeyError, binascii.Error, ValueError) as err:
        raise ValueError(f"rule error message without a readable original payload: {err}") from err
    topic = str(body.get("topic", ""))
    now = int(time.time())
    common = {"uuid": str(uuid.uuid4()), "expires": now + item_ttl_seconds}
    if topic.startswith("$aws/things/") and "/shadow/" in topic:
        received = int(message.get("timestamp", now)) * 1000 if isinstance(message, dict) else now * 1000
        return {
            "document": base64.b64encode(raw).decode("ascii"),
            "topic": topic,
            "receivedAt": received,
            "eventType": "SHADOW_EVENT",
            **common,
        }
    if topic.startswith("$aws/events/") and isinstance(message, dict) and message.get("eventType"):
        return {**message, **common}
    raise ValueError(f"messages of topic {topic!r} are not replication events")


def is_registration(letter: QueuedLetter) -> bool:
    """A failed just-in-time registration rule: its message goes back to the registration function."""
    return str(letter.body.get("topic", "")).startswith("$aws/events/certificates/registered/")


def original_message(letter: QueuedLetter) -> QueuedLetter:
    """``letter`` with the message the rule received as its body (the function's event)."""
    body = json.loads(base64.b64decode(str(letter.body["base64OriginalPayload"])))
    return dataclasses.replace(letter, kind=FUNCTION_EVENT, body=body)


def replay_rule_error(dynamodb: DynamoDBClient, table: str, letter: QueuedLetter, item_ttl_seconds: int) -> None:
    """Write the rebuilt item into ``table`` (the replica in the region of ``dynamodb``)."""
    item = item_from_rule_error(letter.body, item_ttl_seconds)
    dynamodb.put_item(TableName=table, Item=to_item(item))


def stream_records(streams: DynamoDBStreamsClient, batch_info: dict[str, Any]) -> list[dict[str, Any]]:
    """The records from ``startSequenceNumber`` to ``endSequenceNumber`` of the batch's shard, as Lambda had them.

    Raises the stream's error (for example TrimmedDataAccessException after 24 hours).
    """
    iterator = streams.get_shard_iterator(
        StreamArn=batch_info["streamArn"],
        ShardId=batch_info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch_info["startSequenceNumber"],
    )["ShardIterator"]
    end = int(batch_info["endSequenceNumber"])
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page.get("Records", []):
            if int(record["dynamodb"]["SequenceNumber"]) > end:
                return records
            records.append({**record, "eventSourceARN": batch_info["streamArn"]})
        if not page.get("Records"):
            return records
        iterator = page.get("NextShardIterator")
    return records


def replay_stream_batch(
    streams: DynamoDBStreamsClient, sfn: SFNClient, state_machine_arn: str, letter: QueuedLetter
) -> int:
    """Run the workflow on the pointed-to records (``sfn`` with ``workflow.SYNC_EXECUTION_CONFIG``); returns how
    many records it applied or parked. Raises ``workflow.WorkflowNotSucceeded``, RuntimeError if it could neither
    apply nor park some records, or the service's error: the message then stays queued."""
    records = [r for r in stream_records(streams, letter.body["DDBStreamBatchInfo"]) if r.get("eventName") != "REMOVE"]
    inputs = [(record, workflow_input_from_record(record)) for record in records]
    for group in chunks(inputs):
        _apply_all(sfn, state_machine_arn, [workflow_input for _, workflow_input in group])
    return len(inputs)


def replay_parked_item(sfn: SFNClient, state_machine_arn: str, letter: QueuedLetter) -> None:
    """Run the workflow on the item a dead letter in the fallback queue holds (raises as ``replay_stream_batch``)."""
    _apply_all(sfn, state_machine_arn, [letter.body["deadLetter"]["payload"]])


def _apply_all(sfn: SFNClient, state_machine_arn: str, items: list[dict[str, Any]]) -> None:
    not_applied = apply_items(sfn, state_machine_arn, f"replay-{uuid.uuid4()}", items)
    if not_applied:
        raise RuntimeError(f"the workflow could neither apply nor park {len(not_applied)} of {len(items)} items")


def replay_function_event(lambdas: LambdaClient, function_name: str, letter: QueuedLetter) -> None:
    """Invoke ``function_name`` synchronously with the parked event; raises RuntimeError if the function fails."""
    response = lambdas.invoke(FunctionName=function_name, Payload=json.dumps(letter.body).encode())
    if response.get("FunctionError"):
        raise RuntimeError(f"{function_name} failed again: {response['Payload'].read().decode()[:500]}")


def delete(sqs: SQSClient, letter: QueuedLetter) -> None:
    """Delete the message for good (DeleteMessage,
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html)."""
    sqs.delete_message(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle)


def release(sqs: SQSClient, letter: QueuedLetter) -> None:
    """Make a message read for replay visible again at once (its replay failed)."""
    sqs.change_message_visibility(QueueUrl=letter.queue_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0)
