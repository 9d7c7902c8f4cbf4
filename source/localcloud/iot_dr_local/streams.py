"""DynamoDB stream records as DynamoDB writes them, and event source mappings as Lambda polls them.

moto calls a mapped function synchronously inside ``put_item`` and then empties the shard; it also writes
two records for an ``update_item`` that creates an item and labels every record ``us-east-1``. Here the
shard only collects records, and ``StreamPoller`` reads every enabled mapping on its own checkpoints with
the mapping's batch size and batching window, partial batch responses, bisection, retry and record-age limits,
on-failure destination and parallelization factor, the way the Lambda service does.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.awslambda.models import EventSourceMapping, LambdaBackend, lambda_backends
from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import StreamRecord, StreamShard, Table
from moto.sns.models import sns_backends

from iot_dr_local import internal_errors, lambda_runtime
from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.moto_fixes.lambda_payloads import MAX_SYNCHRONOUS_BYTES
from iot_dr_local.patching import Patches
from iot_dr_local.periodic import Periodic

if TYPE_CHECKING:
    from iot_dr_local.dispatcher import Dispatcher

LOG = logging.getLogger(__name__)

WriteObserver = Callable[[Table, Item | None, Item | None], None]
STREAM_RETENTION_SECONDS = 24 * 3600
# Threads that run batches, for every mapping's lanes together (ParallelizationFactor is at most 10 per shard).
# A batch waits for its invocation; Lambda's own concurrency limits still apply inside lambda_runtime.
BATCH_WORKERS = 32

_local = threading.local()
_observers: list[WriteObserver] = []
_shard_patches = Patches()


def _add_record(shard: StreamShard, old: Item | None, new: Item | None) -> None:
    if getattr(_local, "suppressed", False):
        return
    if old is not None and new is not None and old.to_json() == new.to_json():
        return  # DynamoDB writes no stream record for a write that changes nothing
    table = shard.table
    event_name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    view_type = table.stream_specification["StreamViewType"]
    sequence = shard.starting_sequence_number + len(shard.items)
    record = StreamRecord(table, view_type, event_name, old, new, sequence)
    record.record["awsRegion"] = table.region_name
    shard.items.append(record)
    for observer in list(_observers):
        observer(table, old, new)


def _update_item(backend: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
    _local.in_update_item = True
    try:
        return _shard_patches.original(DynamoDBBackend, "update_item")(backend, *args, **kwargs)
    finally:
        _local.in_update_item = False


def _table_put_item(table: Table, *args: Any, **kwargs: Any) -> Any:
    # update_item creates a missing item with a keys-only put before applying the update; DynamoDB
    # records one INSERT for the whole update, which update_item itself adds.
    put_item = _shard_patches.original(Table, "put_item")
    if not getattr(_local, "in_update_item", False):
        return put_item(table, *args, **kwargs)
    _local.suppressed = True
    try:
        return put_item(table, *args, **kwargs)
    finally:
        _local.suppressed = False


def install_shard_patch() -> None:
    """Make stream shards only record writes, as DynamoDB does (idempotent; stays installed)."""
    if _shard_patches.applied:
        return
    _shard_patches.set(StreamShard, "add", _add_record)
    _shard_patches.set(DynamoDBBackend, "update_item", _update_item)
    _shard_patches.set(Table, "put_item", _table_put_item)


def add_write_observer(observer: WriteObserver) -> None:
    """Call ``observer(table, old, new)`` after every recorded write to a table with a stream."""
    install_shard_patch()
    _observers.append(observer)


def remove_write_observer(observer: WriteObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def wire_value(value: dict[str, Any]) -> dict[str, Any]:
    """One attribute value as DynamoDB's JSON wire protocol carries it: ``B`` and ``BS`` base64-encoded.

    moto keeps binary values as bytes (or, depending on the call, as their base64 text); Lambda receives
    every type in the data-type descriptor form, binaries as base64 strings:
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_AttributeValue.html
    """
    ((kind, content),) = value.items()
    if kind == "B":
        return {"B": _base64(content)}
    if kind == "BS":
        return {"BS": [_base64(member) for member in content]}
    if kind == "M":
        return {"M": {name: wire_value(member) for name, member in content.items()}}
    if kind == "L":
        return {"L": [wire_value(member) for member in content]}
    return {kind: content}


def _base64(content: bytes | str) -> str:
    return base64.b64encode(content).decode() if isinstance(content, bytes) else content


def lambda_record(record: dict[str, Any], source_arn: str) -> dict[str, Any]:
    """A stream record in the shape Lambda passes to the function."""
    dynamodb = dict(record["dynamodb"])
    dynamodb["ApproximateCreationDateTime"] = int(_arrival(record))
    for image in ("Keys", "NewImage", "OldImage"):
        if image in dynamodb:
            dynamodb[image] = {name: wire_value(value) for name, value in dynamodb[image].items()}
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record["eventVersion"],
        "eventSource": record["eventSource"],
        "awsRegion": record["awsRegion"],
        "dynamodb": dynamodb,
        "eventSourceARN": source_arn,
    }


def _arrival(record: dict[str, Any]) -> float:
    created = record["dynamodb"]["ApproximateCreationDateTime"]
    return float(created) if isinstance(created, int | float) else unix_time(created)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_dynamodb_stream(arn: str) -> bool:
    return arn.split(":")[2] == "dynamodb" and "/stream/" in arn


def _shard(account_id: str, arn: str) -> StreamShard | None:
    """The shard behind a stream ARN, or None once that stream no longer exists."""
    region = arn.split(":")[3]
    table_name, _, label = arn.split(":", 5)[5].removeprefix("table/").partition("/stream/")
    table = dynamodb_backends[account_id][region].tables.get(table_name)
    if table is None or table.latest_stream_label != label:
        return None
    return table.stream_shard


@dataclass(frozen=True)
class _Config:
    """The mapping settings one batch is processed with."""

    account_id: str
    region: str
    function_arn: str
    source_arn: str
    batch_size: int
    bisect: bool
    max_retries: int
    max_age: int
    report_item_failures: bool
    on_failure: str | None

    @classmethod
    def of(cls, account_id: str, region: str, esm: EventSourceMapping) -> _Config:
        destination = ((esm.destination_config or {}).get("OnFailure") or {}).get("Destination")
        return cls(
            account_id=account_id,
            region=region,
            function_arn=esm.function_arn,
            source_arn=esm.event_source_arn,
            batch_size=int(esm.batch_size),
            bisect=bool(esm.bisect_on_error),
            max_retries=int(-1 if esm.max_retry_attempts is None else esm.max_retry_attempts),
            max_age=int(-1 if esm.max_record_age is None else esm.max_record_age),
            report_item_failures="ReportBatchItemFailures" in (esm.function_response_types or []),
            on_failure=destination,
        )


@dataclass
class _Checkpoint:
    """Where one lane of a mapping stands: ``position``, ``limit`` and ``bisect_end`` count the lane's records."""

    position: int
    attempts: int = 0
    limit: int | None = None
    bisect_end: int = 0
    not_before: float = 0.0
    in_flight: bool = False


@dataclass
class _Reader:
    """One mapping's lanes in its shard.

    With ``ParallelizationFactor`` N, Lambda processes up to N batches of a shard at once and keeps the records of
    an item in order (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html,
    https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html). Here a record goes to lane
    ``crc32(partition key value) % N``; every lane has its own checkpoint, batches, retries and bisection, so a
    failing batch holds up only its own lane. ``members[lane]`` lists the shard positions of the lane's records,
    from where the mapping started reading up to ``assigned``. A changed factor applies once every lane is settled
    (no batch in flight, no retry or bisection pending): the records no lane has read yet are spread again.
    """

    factor: int
    assigned: int
    lanes: list[_Checkpoint] = field(default_factory=list)
    members: list[list[int]] = field(default_factory=list)

    @classmethod
    def starting_at(cls, start: int, factor: int) -> _Reader:
        """Lanes that read the shard from position ``start`` on."""
        lanes = [_Checkpoint(position=0) for _ in range(factor)]
        return cls(factor=factor, assigned=start, lanes=lanes, members=[[] for _ in range(factor)])

    def assign(self, shard: StreamShard) -> None:
        """Give the shard's new records their lanes; caller holds the poller's lock."""
        self._place(shard, range(self.assigned, len(shard.items)))
        self.assigned = max(self.assigned, len(shard.items))

    def regrouped(self, shard: StreamShard, factor: int) -> _Reader:
        """The same progress in ``factor`` lanes; only for a settled reader."""
        unread = sorted(
            index
            for checkpoint, members in zip(self.lanes, self.members, strict=True)
            for index in members[checkpoint.position :]
        )
        reader = _Reader.starting_at(self.assigned, factor)
        reader._place(shard, unread)
        return reader

    def settled(self) -> bool:
        return not any(checkpoint.in_flight or checkpoint.attempts or checkpoint.limit for checkpoint in self.lanes)

    def _place(self, shard: StreamShard, positions: Iterable[int]) -> None:
        hash_key = shard.table.hash_key_attr
        for position in positions:
            self.members[self._lane(shard.items[position].record, hash_key)].append(position)

    def _lane(self, record: dict[str, Any], hash_key: str) -> int:
        if self.factor == 1:
            return 0
        # A stable hash (Python's hash() of a str changes with every process) of the key in its wire form.
        key = json.dumps(wire_value(record["dynamodb"]["Keys"][hash_key]), sort_keys=True)
        return zlib.crc32(key.encode()) % self.factor

    def unread(self, lane: int) -> int:
        return len(self.members[lane]) - self.lanes[lane].position

    def in_flight(self) -> bool:
        return any(checkpoint.in_flight for checkpoint in self.lanes)


@dataclass(frozen=True)
class _Batch:
    config: _Config
    shard_id: str
    start: int
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class _Outcome:
    """What the function said about a batch: how many records succeeded, and whether it raised."""

    succeeded: int
    function_error: bool


class StreamPoller:
    """Polls every enabled DynamoDB-stream event source mapping, in every account and region."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        poll_interval: float = 0.05,
        retry_backoff: float = 0.05,
        max_backoff: float = 1.0,
        record_retention_seconds: float = STREAM_RETENTION_SECONDS,
    ) -> None:
        self.poll_interval = poll_interval
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.record_retention_seconds = record_retention_seconds
        self._lock = threading.Lock()
        self._readers: dict[str, _Reader] = {}
        self._loop = Periodic("stream-poller", lambda: self.poll_interval, self._poll)
        self._patches = Patches()
        self._batches = _batch_pool()
        dispatcher.add_busy_probe(self.busy)

    def start(self) -> None:
        install_shard_patch()
        self._patches.wrap(LambdaBackend, "create_event_source_mapping", self._checkpointing)
        self._loop.start()

    def stop(self) -> None:
        """Stop polling in every lane. Batches already running end on their own: the local cloud aborts the
        executions they may wait for after its workers stop."""
        self._loop.stop()
        running, self._batches = self._batches, _batch_pool()
        running.shutdown(wait=False)
        self._patches.restore()

    def _checkpointing(self, original: Callable[..., EventSourceMapping]) -> Callable[..., EventSourceMapping]:
        def create_event_source_mapping(backend: LambdaBackend, spec: dict[str, Any]) -> EventSourceMapping:
            esm = original(backend, spec)
            # LATEST means "records written after the mapping was created", not after the first poll.
            if _is_dynamodb_stream(esm.event_source_arn):
                self._reader(backend.account_id, esm)
            return esm

        return create_event_source_mapping

    def reset(self) -> None:
        """Forget every mapping's lanes."""
        with self._lock:
            self._readers.clear()

    def busy(self) -> bool:
        """Whether any lane of an enabled mapping has a batch in flight or records to read."""
        with SERVICE_LOCK.held():
            for account_id, esm, shard in self._mappings():
                if not esm.enabled:
                    continue
                reader = self._reader(account_id, esm)
                with self._lock:
                    if reader.in_flight():
                        return True
                    if shard is not None:
                        reader.assign(shard)
                        if any(reader.unread(lane) for lane in range(reader.factor)):
                            return True
        return False

    def _mappings(self) -> Iterator[tuple[str, EventSourceMapping, StreamShard | None]]:
        """DynamoDB-stream mappings with their shards; caller holds the service lock."""
        for account_id, _, backend in lambda_backends.iter_backends():
            for esm in list(backend._event_source_mappings.values()):
                if _is_dynamodb_stream(esm.event_source_arn):
                    yield account_id, esm, _shard(account_id, esm.event_source_arn)

    def _reader(self, account_id: str, esm: EventSourceMapping) -> _Reader:
        """The mapping's lanes, created with its ParallelizationFactor the first time it is seen."""
        with self._lock:
            reader = self._readers.get(esm.uuid)
            if reader is None:
                shard = _shard(account_id, esm.event_source_arn)
                start = len(shard.items) if shard is not None and esm.starting_position == "LATEST" else 0
                reader = self._readers[esm.uuid] = _Reader.starting_at(start, _factor(esm))
            return reader

    def _poll(self) -> None:
        for mapping_id, lane in self._due():
            self._batches.submit(self._process, mapping_id, lane)

    def _due(self) -> list[tuple[str, int]]:
        """Lanes of mappings with unread records and no batch in flight; marks them in flight."""
        now = time.monotonic()
        due = []
        with SERVICE_LOCK.held():
            known = set()
            for account_id, esm, shard in self._mappings():
                known.add(esm.uuid)
                reader = self._reader(account_id, esm)
                if not esm.enabled or shard is None:
                    continue
                with self._lock:
                    if reader.factor != _factor(esm) and reader.settled():
                        reader = self._readers[esm.uuid] = reader.regrouped(shard, _factor(esm))
                    reader.assign(shard)
                    for lane, checkpoint in enumerate(reader.lanes):
                        if checkpoint.in_flight or checkpoint.not_before > now or not reader.unread(lane):
                            continue
                        if self._gathering(esm, reader, lane, shard, now=time.time()):
                            continue
                        checkpoint.in_flight = True
                        due.append((esm.uuid, lane))
            with self._lock:
                for forgotten in set(self._readers) - known:
                    if not self._readers[forgotten].in_flight():
                        del self._readers[forgotten]
        return due

    @staticmethod
    def _gathering(esm: EventSourceMapping, reader: _Reader, lane: int, shard: StreamShard, now: float) -> bool:
        """Whether a lane's new batch still waits for records: Lambda "gathers records for up to
        MaximumBatchingWindowInSeconds" unless the batch is full
        (https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html). A retry does not wait."""
        checkpoint = reader.lanes[lane]
        window = float(esm.max_batch_window or 0)
        if not window or checkpoint.attempts or checkpoint.limit:
            return False
        if reader.unread(lane) >= int(esm.batch_size):
            return False
        first = reader.members[lane][checkpoint.position]
        return now - _arrival(shard.items[first].record) < window

    def _process(self, mapping_id: str, lane: int) -> None:
        with self._lock:
            reader = self._readers.get(mapping_id)
        if reader is None:  # forgotten by reset() while queued
            return
        checkpoint = reader.lanes[lane]
        settled = False
        try:
            batch = self._next_batch(mapping_id, reader, lane)
            if batch is None:
                settled = True
                return
            expired = self._expired_prefix(batch)
            if expired:
                self._discard(checkpoint, batch, expired, "RecordAgeExceeded", function_error=False)
            else:
                self._settle(checkpoint, batch, self._invoke(batch))
            settled = True
        except Exception as err:  # an emulator fault: reported, then the mapping backs off instead of dying
            internal_errors.report("stream-poller", err)
        finally:
            with self._lock:
                checkpoint.in_flight = False
                if not settled:
                    checkpoint.not_before = time.monotonic() + self.max_backoff

    def _next_batch(self, mapping_id: str, reader: _Reader, lane: int) -> _Batch | None:
        """The lane's next batch; ``start`` counts the lane's records."""
        with SERVICE_LOCK.held():
            for account_id, _, backend in lambda_backends.iter_backends():
                esm = backend._event_source_mappings.get(mapping_id)
                if esm is not None:
                    shard = _shard(account_id, esm.event_source_arn)
                    if shard is None:
                        return None
                    config = _Config.of(account_id, backend.region_name, esm)
                    with self._lock:
                        checkpoint = reader.lanes[lane]
                        limit = checkpoint.limit or config.batch_size
                        start = checkpoint.position
                        positions = reader.members[lane][start : start + limit]
                    records = _within_payload_limit([shard.items[position].to_json() for position in positions])
                    return _Batch(config=config, shard_id=shard.id, start=start, records=records)
        return None

    def _expired_prefix(self, batch: _Batch) -> int:
        """How many records at the head of the batch are too old to deliver."""
        now = time.time()
        limits = [self.record_retention_seconds]
        if batch.config.max_age >= 0:
            limits.append(batch.config.max_age)
        oldest_allowed = now - min(limits)
        expired = 0
        for record in batch.records:
            if _arrival(record) >= oldest_allowed:
                break
            expired += 1
        return expired

    def _invoke(self, batch: _Batch) -> _Outcome:
        """Deliver the batch. A batch the emulator itself cannot deliver counts as a failed invocation, so
        the mapping's retry, bisection and on-failure settings move the shard past it instead of stalling."""
        try:
            event = {"Records": [lambda_record(r, batch.config.source_arn) for r in batch.records]}
            response = lambda_runtime.invoke_function(
                batch.config.account_id, batch.config.region, batch.config.function_arn, event
            )
        except lambda_runtime.LambdaInvocationError as err:
            LOG.info(
                "stream batch failed",
                extra={"function": batch.config.function_arn, "error_type": err.error_type},
            )
            return _Outcome(succeeded=0, function_error=True)
        except Exception as err:  # an emulator fault, never the function's
            internal_errors.report("stream-poller", err)
            return _Outcome(succeeded=0, function_error=True)
        if not batch.config.report_item_failures:
            return _Outcome(succeeded=len(batch.records), function_error=False)
        return _Outcome(succeeded=_checkpoint_from_response(response, batch.records), function_error=False)

    def _settle(self, checkpoint: _Checkpoint, batch: _Batch, outcome: _Outcome) -> None:
        config = batch.config
        if outcome.succeeded == len(batch.records):
            with self._lock:
                checkpoint.position += outcome.succeeded
                checkpoint.attempts = 0
                if checkpoint.position >= checkpoint.bisect_end:
                    checkpoint.limit = None
            return
        failed = len(batch.records) - outcome.succeeded
        with self._lock:
            if outcome.function_error and config.bisect and failed > 1:
                # Split the failing batch in two and retry each half; splitting uses no retry attempt.
                checkpoint.limit = math.ceil(failed / 2)
                checkpoint.bisect_end = max(checkpoint.bisect_end, batch.start + len(batch.records))
                return
            checkpoint.position += outcome.succeeded
            checkpoint.attempts = 1 if outcome.succeeded else checkpoint.attempts + 1
            exhausted = 0 <= config.max_retries < checkpoint.attempts
            if not exhausted:
                delay = self.retry_backoff * 2 ** (checkpoint.attempts - 1)
                checkpoint.not_before = time.monotonic() + min(self.max_backoff, delay)
                return
        start = batch.start + outcome.succeeded
        remaining = _Batch(config, batch.shard_id, start, batch.records[outcome.succeeded :])
        self._discard(checkpoint, remaining, failed, "RetryAttemptsExhausted", outcome.function_error)

    def _discard(
        self, checkpoint: _Checkpoint, batch: _Batch, count: int, condition: str, function_error: bool
    ) -> None:
        """Skip ``count`` records at the head of the batch, telling the on-failure destination."""
        records = batch.records[:count]
        with self._lock:
            invocations = checkpoint.attempts
            checkpoint.position = batch.start + count
            checkpoint.attempts = 0
            if checkpoint.position >= checkpoint.bisect_end:
                checkpoint.limit = None
        LOG.warning(
            "stream records discarded",
            extra={"source": batch.config.source_arn, "records": count, "condition": condition},
        )
        if batch.config.on_failure is not None:
            document = _on_failure_record(batch, records, condition, invocations, function_error)
            send_to_destination(batch.config.on_failure, json.dumps(document))


def _factor(esm: EventSourceMapping) -> int:
    """The mapping's ParallelizationFactor (1 when not set, as Lambda's default)."""
    return int(esm.parallelization_factor or 1)


def _batch_pool() -> ThreadPoolExecutor:
    """Threads for batches, apart from the dispatcher's: up to ParallelizationFactor batches per shard wait for their
    invocations at once, and must not take the workers of message delivery and table replication."""
    return ThreadPoolExecutor(max_workers=BATCH_WORKERS, thread_name_prefix="stream-batch")


def send_to_destination(destination_arn: str, body: str) -> None:
    """Deliver an invocation record to an on-failure destination: an SQS queue or an SNS topic.

    Stream event source mappings accept both kinds:
    https://docs.aws.amazon.com/lambda/latest/api/API_OnFailure.html
    """
    parts = destination_arn.split(":")
    if parts[2] != "sns":
        lambda_runtime.send_to_queue(destination_arn, body)
        return
    with SERVICE_LOCK.held():
        sns_backends[parts[4]][parts[3]].publish(body, arn=destination_arn)


def _within_payload_limit(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The head of ``records`` whose stream sizes fit one synchronous invocation (at least one record).

    "Lambda passes all of the records in the batch to the function in a single call, as long as the total size
    of the events doesn't exceed the payload limit for synchronous invocation (6 MB)":
    https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html (BatchSize).
    """
    total = 0
    for count, record in enumerate(records):
        total += int(record["dynamodb"].get("SizeBytes", 0))
        if total > MAX_SYNCHRONOUS_BYTES and count:
            return records[:count]
    return records


def _checkpoint_from_response(response: Any, records: list[dict[str, Any]]) -> int:
    """Records before the lowest reported failure; a malformed report fails the whole batch."""
    if not response:
        return len(records)
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not failures:
        return len(records)
    sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
    failed_positions = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in sequence_numbers:
            return 0
        failed_positions.append(sequence_numbers.index(identifier))
    return min(failed_positions)


def _on_failure_record(
    batch: _Batch, records: list[dict[str, Any]], condition: str, invocations: int, function_error: bool
) -> dict[str, Any]:
    """The invocation record Lambda sends to an on-failure destination for a stream batch."""
    document: dict[str, Any] = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": batch.config.function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "version": "1.0",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "DDBStreamBatchInfo": {
            "shardId": batch.shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(_arrival(records[0])),
            "approximateArrivalOfLastRecord": _iso(_arrival(records[-1])),
            "batchSize": len(records),
            "streamArn": batch.config.source_arn,
        },
    }
    if invocations:
        document["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error:
            document["responseContext"]["functionError"] = "Unhandled"
    return document
