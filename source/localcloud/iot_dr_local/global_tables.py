"""DynamoDB global tables, version 2019.11.21: replicas in other regions and asynchronous replication.

moto accepts ``UpdateTable`` with ``ReplicaUpdates`` and does nothing. Here a replica is created with the
source table's schema, stream, encryption, billing, TTL and items; every write in any replica reaches the
others in the background, in order per source region, never echoed back, and the newest write of an
item wins, as DynamoDB resolves concurrent writes. Replicated writes produce stream records in the
target replica like any other write.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from iot_dr_local import internal_errors, streams
from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.patching import Patches

if TYPE_CHECKING:
    from iot_dr_local.dispatcher import Dispatcher

LOG = logging.getLogger(__name__)

GLOBAL_TABLE_VERSION = "2019.11.21"

_applying = threading.local()


@dataclass(frozen=True)
class _Write:
    """One write to replicate: the new image, or None for a delete."""

    account_id: str
    table_name: str
    source: str
    target: str
    key: dict[str, Any]
    image: dict[str, Any] | None
    written_at: float


_QueueKey = tuple[str, str, str, str]  # account, table, source region, target region


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def _key_of(table: Table, item: Item) -> dict[str, Any]:
    attributes = item.to_json()["Attributes"]
    return {name: attributes[name] for name in (table.hash_key_attr, table.range_key_attr) if name}


class GlobalTableReplicator:
    """Keeps the replicas of every global table in step."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str], set[str]] = {}
        self._queues: dict[_QueueKey, deque[_Write]] = {}
        self._draining: set[_QueueKey] = set()
        self._paused: set[str] = set()
        self._last_write: dict[tuple[str, str, str, str], float] = {}
        self._patches = Patches()
        dispatcher.add_busy_probe(self.busy)

    def install(self) -> None:
        if self._patches.applied:
            return
        self._patches.wrap(DynamoHandler, "update_table", self._replicating_update_table)
        self._patches.wrap(Table, "describe", self._describing_replicas)
        self._patches.wrap(DynamoDBBackend, "delete_table", self._leaving_group)
        streams.add_write_observer(self._on_write)

    def uninstall(self) -> None:
        streams.remove_write_observer(self._on_write)
        self._patches.restore()

    def _replicating_update_table(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def update_table(handler: DynamoHandler) -> Any:
            updates = handler.body.get("ReplicaUpdates")
            if updates:
                self._apply_replica_updates(handler.current_account, handler.region, handler.body["TableName"], updates)
            return original(handler)

        return update_table

    def _describing_replicas(self, original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def describe(table: Table, base_key: str = "TableDescription") -> dict[str, Any]:
            description = original(table, base_key)
            others = self.replica_regions(table.account_id, table.name, table.region_name)
            if others:
                description[base_key]["GlobalTableVersion"] = GLOBAL_TABLE_VERSION
                description[base_key]["Replicas"] = [
                    {"RegionName": region, "ReplicaStatus": "ACTIVE"} for region in others
                ]
            return description

        return describe

    def _leaving_group(self, original: Callable[..., Table]) -> Callable[..., Table]:
        def delete_table(backend: DynamoDBBackend, name: str) -> Table:
            table = original(backend, name)
            self._leave_group(backend.account_id, table.name, backend.region_name)
            return table

        return delete_table

    def reset(self) -> None:
        with self._lock:
            self._groups.clear()
            self._queues.clear()
            self._draining.clear()
            self._paused.clear()
            self._last_write.clear()

    def register_group(self, account_id: str, table_name: str, regions: list[str]) -> None:
        """Declare existing same-named tables in ``regions`` replicas of one global table."""
        with self._lock:
            self._groups[(account_id, table_name)] = set(regions)

    def replica_regions(self, account_id: str, table_name: str, region: str) -> list[str]:
        """The other regions holding a replica of the table in ``region`` (empty when not global)."""
        with self._lock:
            group = self._groups.get((account_id, table_name), set())
            return sorted(group - {region}) if region in group else []

    def set_paused(self, region: str, paused: bool) -> None:
        """Hold replication into and out of ``region``; resuming releases the backlog in order."""
        with self._lock:
            if paused:
                self._paused.add(region)
                return
            self._paused.discard(region)
            ready = [key for key in self._queues if self._ready(key)]
            self._draining.update(ready)
        for key in ready:
            self._dispatcher.submit(self._drain, key)

    def busy(self) -> bool:
        """Writes waiting for a region that is not paused."""
        with self._lock:
            return bool(self._draining) or any(queue and not self._held(key) for key, queue in self._queues.items())

    def _held(self, key: _QueueKey) -> bool:
        return key[2] in self._paused or key[3] in self._paused

    def _ready(self, key: _QueueKey) -> bool:
        return bool(self._queues.get(key)) and not self._held(key) and key not in self._draining

    def _apply_replica_updates(
        self, account_id: str, region: str, table_name: str, updates: list[dict[str, Any]]
    ) -> None:
        for update in updates:
            if "Create" in update:
                self._create_replica(account_id, region, table_name, update["Create"])
            elif "Delete" in update:
                self._delete_replica(account_id, region, table_name, update["Delete"]["RegionName"])
            else:
                raise MockValidationException(f"The local cloud does not support replica update {list(update)}")

    def _create_replica(self, account_id: str, region: str, table_name: str, create: dict[str, Any]) -> None:
        target_region = create["RegionName"]
        source = dynamodb_backends[account_id][region].get_table(table_name)
        stream = source.stream_specification or {}
        if not stream.get("StreamEnabled") or stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise MockValidationException(
                "Table must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES to add a replica"
            )
        target_backend = dynamodb_backends[account_id][target_region]
        if table_name in target_backend.tables:
            raise MockValidationException(
                f"Failed to create a replica of table '{table_name}' in {target_region}: a table with that name exists"
            )
        sse = None
        if source.sse_specification and source.sse_specification.get("Enabled"):
            sse = {"Enabled": True, "SSEType": "KMS"}
            if create.get("KMSMasterKeyId"):
                sse["KMSMasterKeyId"] = create["KMSMasterKeyId"]
        throughput = None
        if source.billing_mode != "PAY_PER_REQUEST":
            throughput = {k: source.throughput[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}
        replica = target_backend.create_table(
            name=table_name,
            schema=copy.deepcopy(source.schema),
            throughput=throughput,
            attr=copy.deepcopy(source.attr),
            global_indexes=[index.describe() for index in source.global_indexes],
            indexes=[index.describe() for index in source.indexes],
            streams=None,
            billing_mode=source.billing_mode,
            sse_specification=sse,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
        # Existing items are copied before the stream exists: the backfill is not a stream of writes.
        for item in source.all_items():
            replica.put_item(copy.deepcopy(item.to_json()["Attributes"]))
        replica.ttl = dict(source.ttl)
        replica.set_stream_specification(dict(stream))
        with self._lock:
            group = self._groups.setdefault((account_id, table_name), {region})
            group.add(target_region)

    def _delete_replica(self, account_id: str, region: str, table_name: str, target_region: str) -> None:
        if target_region not in self.replica_regions(account_id, table_name, region):
            raise MockValidationException(f"Replica in {target_region} of table '{table_name}' does not exist")
        dynamodb_backends[account_id][target_region].delete_table(table_name)

    def _leave_group(self, account_id: str, table_name: str, region: str) -> None:
        with self._lock:
            group = self._groups.get((account_id, table_name))
            if group is None:
                return
            group.discard(region)
            if len(group) < 2:
                del self._groups[(account_id, table_name)]

    def _on_write(self, table: Table, old: Item | None, new: Item | None) -> None:
        if getattr(_applying, "active", False):
            return  # a replicated write is never sent back
        region = table.region_name
        current = new if new is not None else old
        assert current is not None
        key = _key_of(table, current)
        image = copy.deepcopy(new.to_json()["Attributes"]) if new is not None else None
        written_at = time.time()
        with self._lock:
            group = self._groups.get((table.account_id, table.name))
            if group is None or region not in group:
                return
            self._last_write[(table.account_id, table.name, region, _key_text(key))] = written_at
            ready = []
            for target in sorted(group - {region}):
                queue_key = (table.account_id, table.name, region, target)
                write = _Write(table.account_id, table.name, region, target, key, image, written_at)
                self._queues.setdefault(queue_key, deque()).append(write)
                if self._ready(queue_key):
                    self._draining.add(queue_key)
                    ready.append(queue_key)
        for queue_key in ready:
            self._dispatcher.submit(self._drain, queue_key)

    def _drain(self, queue_key: _QueueKey) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(queue_key)
                if not queue or self._held(queue_key):
                    self._draining.discard(queue_key)
                    return
                write = queue[0]
            try:
                self._apply(write)
            except Exception as err:  # an emulator fault: reported; the queue keeps draining behind it
                internal_errors.report("global-tables", err)
            finally:
                with self._lock:
                    if queue and queue[0] is write:
                        queue.popleft()

    def _apply(self, write: _Write) -> None:
        with SERVICE_LOCK.held():
            table = dynamodb_backends[write.account_id][write.target].tables.get(write.table_name)
            if table is None:
                LOG.warning("replica table is gone", extra={"table": write.table_name, "region": write.target})
                return
            last_key = (write.account_id, write.table_name, write.target, _key_text(write.key))
            with self._lock:
                if self._last_write.get(last_key, 0.0) > write.written_at:
                    return  # the replica holds a newer write of this item, which wins everywhere
                self._last_write[last_key] = write.written_at
            _applying.active = True
            try:
                if write.image is None:
                    table.delete_item(*self._key_values(table, write.key))
                else:
                    table.put_item(copy.deepcopy(write.image))
            finally:
                _applying.active = False

    @staticmethod
    def _key_values(table: Table, key: dict[str, Any]) -> tuple[DynamoType, DynamoType | None]:
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        return DynamoType(key[table.hash_key_attr]), range_value
