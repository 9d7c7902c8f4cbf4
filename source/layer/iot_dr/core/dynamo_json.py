"""Conversion between DynamoDB attribute values and plain JSON values.

boto3's own (de)serialiser is used: unlike the archived solution's converter it never turns strings into dates
or collapses maps that happen to contain a key named "S".
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Binary):
        value = value.value  # type: ignore[attr-defined]  # types-boto3 omits Binary.value (boto3 has it)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _binaries_decoded(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value with ``B`` and ``BS`` as bytes: Lambda delivers stream images with binaries
    base64-encoded (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_AttributeValue.html),
    boto3 clients return them decoded. ValueError for a binary that is not base64."""
    ((kind, content),) = value.items()
    if kind == "B":
        return {"B": _bytes(content)}
    if kind == "BS":
        return {"BS": [_bytes(member) for member in content]}
    if kind == "M":
        return {"M": {name: _binaries_decoded(member) for name, member in content.items()}}
    if kind == "L":
        return {"L": [_binaries_decoded(member) for member in content]}
    return value


def _bytes(content: Any) -> bytes:
    if isinstance(content, bytes | bytearray):
        return bytes(content)
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, TypeError) as err:
        raise ValueError(f"binary attribute is not base64: {err}") from err


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value maps, binaries as bytes or as base64 text) as plain JSON-compatible values.

    Binaries become text (UTF-8, undecodable bytes replaced). Raises ValueError or TypeError for a value that
    is not an attribute-value map."""
    return {
        key: _plain(_deserializer.deserialize(cast("AttributeValueTypeDef", _binaries_decoded(value))))
        for key, value in item.items()
    }


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
