"""Writing replication items into the primary's table, as the topic rules do for registry events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from iot_dr.core.dynamo_json import to_item


def now_ms() -> int:
    return int(time.time() * 1000)


class ItemWriter:
    """Puts event bodies into the replication table with a fresh ``uuid`` key and the TTL attribute ``expires``."""

    def __init__(self, dynamodb: Any, table_name: str, ttl_seconds: int) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._ttl_seconds = ttl_seconds

    @property
    def table_name(self) -> str:
        return self._table

    def put(self, bodies: Iterable[dict[str, Any]]) -> int:
        count = 0
        for body in bodies:
            item = {**body, "uuid": str(uuid.uuid4()), "expires": int(time.time()) + self._ttl_seconds}
            self._dynamodb.put_item(TableName=self._table, Item=to_item(item))
            count += 1
        return count
