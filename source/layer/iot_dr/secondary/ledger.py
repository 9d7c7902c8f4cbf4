"""The version ledger: the newest accepted state of every replicated resource.

Events arrive at least once and in any order, and several workflow executions may handle events of one
resource at the same time. An event is *offered* to the ledger with its order key; the conditional write
accepts it only if no newer event was accepted before. Whoever is accepted then applies the ledger's newest
state and checks again afterwards (``converge``), so the last write to IoT is always the newest state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from iot_dr.core.aws import error_code

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

LOG = logging.getLogger(__name__)

_PART_WIDTH = 20


def order_key(parts: Sequence[int]) -> str:
    """A string that sorts like the tuple of non-negative integers ``parts`` (DynamoDB compares strings)."""
    if any(part < 0 for part in parts):
        raise ValueError(f"order parts must not be negative: {parts!r}")
    return ".".join(str(part).zfill(_PART_WIDTH) for part in parts)


def order_parts(key: str) -> tuple[int, ...]:
    """The integers an ``order_key`` was made of (inverse of ``order_key``); ValueError for other text."""
    return tuple(int(part) for part in key.split("."))


@dataclass(frozen=True)
class LedgerEntry:
    """The last state applied to one resource, with the order key of the event that produced it."""

    resource_key: str
    order_key: str
    state: dict[str, Any]


class Outcome(StrEnum):
    """What happened to an event: applied, older than what was already applied (stale), or nothing to change."""

    APPLIED = "applied"
    STALE = "stale"
    NOT_NEEDED = "not-needed"


class Ledger:
    """Ledger items: ``resourceKey`` (partition key), ``orderKey``, ``state`` (JSON text), ``updatedAt`` (ms) and
    ``expiresAt`` (epoch seconds, the table's TTL attribute).

    An entry expires ``retention_seconds`` after its last write. DynamoDB deletes expired items only eventually
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html), so an expired entry
    counts as absent here already. The retention must outlast every way an old event can still arrive: the
    replication table's item TTL, the stream's 24 hours and the workflow's retries.
    """

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, retention_seconds: int) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._retention = retention_seconds

    def read(self, resource_key: str) -> LedgerEntry | None:
        """The entry of ``resource_key`` (strongly consistent read), or None if there is none or it expired."""
        response = self._dynamodb.get_item(
            TableName=self._table, Key={"resourceKey": {"S": resource_key}}, ConsistentRead=True
        )
        item = response.get("Item")
        if not item or ("expiresAt" in item and int(item["expiresAt"]["N"]) <= int(time.time())):
            return None
        return LedgerEntry(resource_key, item["orderKey"]["S"], json.loads(item["state"]["S"]))

    def offer(
        self, resource_key: str, key: str, state: dict[str, Any], *, replaces: str | None = None, absent: bool = False
    ) -> bool:
        """Record ``state`` unless a newer one is recorded.

        With ``replaces``, only over exactly that entry; with ``absent``, only if there is no entry yet. Returns
        False when the condition fails (someone else wrote first); other errors propagate.
        """
        now = int(time.time())
        values: dict[str, Any] = {":now": {"N": str(now)}}
        absent_or_expired = "attribute_not_exists(resourceKey) OR expiresAt <= :now"
        if absent:
            condition = absent_or_expired
        elif replaces is None:
            condition = f"{absent_or_expired} OR orderKey <= :key"
            values[":key"] = {"S": key}
        else:
            condition = "orderKey = :replaces"
            values = {":replaces": {"S": replaces}}
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    "resourceKey": {"S": resource_key},
                    "orderKey": {"S": key},
                    "state": {"S": json.dumps(state, sort_keys=True)},
                    "updatedAt": {"N": str(int(time.time() * 1000))},
                    "expiresAt": {"N": str(now + self._retention)},
                },
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except Exception as err:
            if error_code(err) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def offer_if_newer(
    ledger: Ledger, resource_key: str, key: str, state: dict[str, Any], newer: Callable[[LedgerEntry], bool]
) -> bool:
    """Record ``state`` if ``newer(recorded)`` says it supersedes the recorded entry (or there is none).

    For orders a string key cannot express; the write is conditional on the entry read, so a concurrent
    writer makes it read and decide again.
    """
    while True:
        entry = ledger.read(resource_key)
        if entry is not None and entry.order_key == key:
            return True  # the same event again (a retry or a duplicate): already recorded, apply it again
        if entry is not None and not newer(entry):
            return False
        if ledger.offer(resource_key, key, state, replaces=entry.order_key if entry else None, absent=entry is None):
            return True


def converge(
    ledger: Ledger,
    resource_key: str,
    key: str,
    state: dict[str, Any],
    apply: Callable[[dict[str, Any]], None],
    newer: Callable[[LedgerEntry], bool] | None = None,
) -> Outcome:
    """Offer ``state`` and, if accepted, apply the newest ledger state until it stops changing.

    The order is ``key``'s string order, or ``newer`` (``offer_if_newer``) when given.
    """
    accepted = (
        ledger.offer(resource_key, key, state)
        if newer is None
        else offer_if_newer(ledger, resource_key, key, state, newer)
    )
    if not accepted:
        LOG.info("stale event skipped", extra={"resourceKey": resource_key, "orderKey": key})
        return Outcome.STALE
    applied: str | None = None
    while True:
        entry = ledger.read(resource_key)
        if entry is None:
            raise RuntimeError(f"ledger entry {resource_key} vanished after it was written")
        if entry.order_key == applied:
            return Outcome.APPLIED
        apply(entry.state)
        applied = entry.order_key
