"""DynamoDB: numbers keep at most 38 significant digits, and items are limited to 400 KB as DynamoDB sizes them.

moto 5.2.5 checks a number's magnitude but not its precision (a 42-digit integer is stored), and measures an
item with its own formula against 405,000 bytes, so it refuses items AWS stores and sizes numbers by their text.
"""

from __future__ import annotations

import base64
from decimal import Decimal, InvalidOperation
from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge, MockValidationException
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.table import Table

from iot_dr_local.patching import Patches

# "The maximum item size in DynamoDB is 400 KB, which includes both attribute name binary length (UTF-8 length)
# and attribute value lengths": https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
MAX_ITEM_BYTES = 400 * 1024
# "Numbers can have up to 38 digits of precision":
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
MAX_NUMBER_DIGITS = 38

_patches = Patches()


def significant_digits(number: str) -> int:
    """Digits of ``number`` without leading and trailing zeros (DynamoDB trims both)."""
    try:
        digits = Decimal(number).as_tuple().digits  # exact: normalize() would round to the context's precision
    except InvalidOperation:
        return 0  # not a number: moto's own check reports it
    return len("".join(map(str, digits)).strip("0"))


def _validate_number(table: Table, value: Any) -> None:
    _patches.original(Table, "_validate_number_type")(table, value)
    if isinstance(value, str) and significant_digits(value) > MAX_NUMBER_DIGITS:
        raise MockValidationException("Attempting to store more than 38 significant digits in a Number")


def attribute_size(value: Any) -> int:
    """Bytes DynamoDB counts for one attribute value (data-type descriptor form or moto's DynamoType).

    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html: strings
    and binaries by their length, a number by 1 byte per two significant digits plus 1, null and Boolean 1
    byte, a list or map 3 bytes plus 1 byte per element plus its elements (and a map's key names).
    """
    if isinstance(value, DynamoType):
        value = {value.type: value.value}
    if not isinstance(value, dict) or len(value) != 1:
        return len(str(value).encode())
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "B":
        return _binary_length(content)
    if kind == "N":
        return (significant_digits(content) + 1) // 2 + 1
    if kind in ("NULL", "BOOL"):
        return 1
    if kind == "SS":
        return sum(len(member.encode()) for member in content)
    if kind == "BS":
        return sum(_binary_length(member) for member in content)
    if kind == "NS":
        return sum((significant_digits(member) + 1) // 2 + 1 for member in content)
    if kind == "L":
        return 3 + sum(1 + attribute_size(member) for member in content)
    return 3 + sum(1 + len(name.encode()) + attribute_size(member) for name, member in content.items())


def _binary_length(content: bytes | str) -> int:
    return len(content) if isinstance(content, bytes) else len(base64.b64decode(content))


def _set_attribute(attributes: LimitedSizeDict, name: str, value: Any) -> None:
    """moto's item attribute store, measured as DynamoDB measures items."""
    size = sum(len(key.encode()) + attribute_size(member) for key, member in attributes.items() if key != name)
    if size + len(name.encode()) + attribute_size(value) > MAX_ITEM_BYTES:
        raise ItemSizeTooLarge
    dict.__setitem__(attributes, name, value)


def install() -> None:
    if not _patches.applied:
        _patches.set(Table, "_validate_number_type", _validate_number)
        _patches.set(LimitedSizeDict, "__setitem__", _set_attribute)


def uninstall() -> None:
    _patches.restore()
