"""Where the scheduled sweep stopped, kept in one DynamoDB item so the next run continues from there.

The item's key is ``{"sweep": SWEEP_ID}`` in the primary stack's ``ReconcileCursorTable`` (output
``ReconcileCursorTableName``). Attributes: ``cursor`` (the last thing name compared; absent: the next run starts a
round from the beginning), ``queryString`` (the query the cursor belongs to: a run with another query starts
afresh), ``rounds`` (rounds completed), ``version`` (advanced by each save) and ``updatedAt`` (epoch ms).

Saves are conditional on the version the run loaded: when two runs overlap (a retried invocation and the next
schedule), only the first to save advances the cursor and the other's save is refused with ``CursorMoved``, so a
slow run can never move the cursor back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from iot_dr.core.aws import error_code
from iot_dr.core.items import now_ms

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

SWEEP_ID = "missing-device-replication"


class CursorMoved(Exception):
    """Another run saved the cursor since this one loaded it."""


@dataclass(frozen=True)
class Position:
    """A loaded cursor: ``cursor`` None at the start of a round; ``version`` 0 when no run has saved yet."""

    cursor: str | None
    rounds: int
    version: int


class CursorStore:
    """The sweep's cursor item in ``table`` (``dynamodb``: a client in the table's region)."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, sweep_id: str = SWEEP_ID) -> None:
        self._dynamodb, self._table, self._key = dynamodb, table, {"sweep": {"S": sweep_id}}

    def load(self, query_string: str) -> Position:
        """The stored position (consistent read); the cursor counts only if it was saved for ``query_string``, so a
        changed query starts a new round."""
        item = self._dynamodb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item") or {}
        version = int(item.get("version", {}).get("N", "0"))
        rounds = int(item.get("rounds", {}).get("N", "0"))
        same_query = item.get("queryString", {}).get("S") == query_string
        cursor = item.get("cursor", {}).get("S") if same_query else None
        return Position(cursor, rounds, version)

    def save(self, loaded: Position, query_string: str, cursor: str | None, round_completed: bool) -> Position:
        """Store ``cursor`` (None: the round is over, start again) if nobody saved since ``loaded``; raises
        ``CursorMoved`` otherwise."""
        saved = Position(cursor, loaded.rounds + int(round_completed), loaded.version + 1)
        item = {
            **self._key,
            "queryString": {"S": query_string},
            "rounds": {"N": str(saved.rounds)},
            "version": {"N": str(saved.version)},
            "updatedAt": {"N": str(now_ms())},
            **({"cursor": {"S": cursor}} if cursor is not None else {}),
        }
        condition = (
            {"ConditionExpression": "attribute_not_exists(sweep)"}
            if loaded.version == 0
            else {
                "ConditionExpression": "version = :loaded",
                "ExpressionAttributeValues": {":loaded": {"N": str(loaded.version)}},
            }
        )
        try:
            self._dynamodb.put_item(TableName=self._table, Item=item, **condition)
        except Exception as err:
            if error_code(err) == "ConditionalCheckFailedException":
                raise CursorMoved(f"the sweep cursor in {self._table} was saved by another run meanwhile") from None
            raise
        return saved
