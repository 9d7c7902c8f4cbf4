"""Writing replication items into the primary's table, as the topic rules do for registry events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from iot_dr.core.dynamo_json import to_item

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient


def now_ms() -> int:
    """The current time in milliseconds since the Unix epoch (the unit of every ``capturedAt`` and ``timestamp``)."""
    return int(time.time() * 1000)


class ItemWriter:
    """Puts event bodies into the replication table with a fresh ``uuid`` key and the TTL attribute ``expires``."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, ttl_seconds: int) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._ttl_seconds = ttl_seconds

    @property
    def table_name(self) -> str:
        """The name of the global table's replica this writer puts items into."""
        return self._table

    def put(self, bodies: Iterable[dict[str, Any]]) -> int:
        """Put each body as one item (PutItem, https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html)
        with a new ``uuid`` and ``expires`` = now + TTL (epoch seconds); returns how many were written. botocore's
        ``ClientError`` propagates (nothing is retried here beyond the SDK's standard retries)."""
        count = 0
        for body in bodies:
            item = {**body, "uuid": str(uuid.uuid4()), "expires": int(time.time()) + self._ttl_seconds}
            self._dynamodb.put_item(TableName=self._table, Item=to_item(item))
            count += 1
        return count
