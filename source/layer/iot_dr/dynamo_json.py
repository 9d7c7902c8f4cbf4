"""Conversion between DynamoDB attribute values and plain JSON values.

boto3's own (de)serialiser is used: unlike the archived solution's converter it never turns strings into dates
or collapses maps that happen to contain a key named "S".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value maps) as plain JSON-compatible values."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _dynamo_ready(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dynamo_ready(v) for v in value]
    return value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON-compatible values as a DynamoDB item."""
    return {key: _serializer.serialize(_dynamo_ready(value)) for key, value in values.items()}
