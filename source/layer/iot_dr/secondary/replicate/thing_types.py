"""Thing types: creation with their properties, deprecation and undeprecation, deletion."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from iot_dr.core.aws import error_code
from iot_dr.core.errors import TransientReplicationError
from iot_dr.secondary.ledger import Outcome, converge, order_key
from iot_dr.secondary.replicate.context import (
    OPERATION_RANK,
    Secondary,
    describe_or_none,
    require,
    require_int,
    require_operation,
)

if TYPE_CHECKING:
    from types_boto3_iot.type_defs import ThingTypePropertiesTypeDef

LOG = logging.getLogger(__name__)


def apply_thing_type_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Apply a THING_TYPE_EVENT registry event
    (https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html#registry-events-thingtype)
    unless a newer one was applied; raises ``MalformedEvent`` for a missing field."""
    name = require(event, "thingTypeName")
    operation = require_operation(event, OPERATION_RANK)
    state = {
        "exists": operation != "DELETED",
        "thingTypeName": name,
        "description": event.get("description") or None,
        "searchableAttributes": list(event.get("searchableAttributes") or []),
        "deprecated": bool(event.get("isDeprecated")),
    }
    key = order_key((require_int(event, "timestamp"), OPERATION_RANK[operation]))
    return converge(ctx.ledger, f"thingType#{name}", key, state, lambda s: write_thing_type(ctx, s))


def write_thing_type(ctx: Secondary, state: dict[str, Any]) -> None:
    """Make the secondary's thing type match ``state``: created, deprecated or undeprecated, or deprecated and
    deleted (https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThingType.html)."""
    name = state["thingTypeName"]
    current = describe_or_none(ctx.iot.describe_thing_type, thingTypeName=name)
    if not state["exists"]:
        if current is not None:
            _delete_thing_type(ctx, name, current)
        return
    if current is None:
        properties: ThingTypePropertiesTypeDef = {}
        if state["description"]:
            properties["thingTypeDescription"] = state["description"]
        if state["searchableAttributes"]:
            properties["searchableAttributes"] = state["searchableAttributes"]
        try:
            ctx.iot.create_thing_type(thingTypeName=name, thingTypeProperties=properties)
        except Exception as err:
            if error_code(err) != "ResourceAlreadyExistsException":
                raise
        current = dict(ctx.iot.describe_thing_type(thingTypeName=name))
    deprecated = bool(current.get("thingTypeMetadata", {}).get("deprecated"))
    if deprecated != state["deprecated"]:
        ctx.iot.deprecate_thing_type(thingTypeName=name, undoDeprecate=not state["deprecated"])


def _delete_thing_type(ctx: Secondary, name: str, current: dict[str, Any]) -> None:
    """IoT deletes a type only after it was deprecated for five minutes and no thing uses it: retry until then."""
    if not current.get("thingTypeMetadata", {}).get("deprecated"):
        ctx.iot.deprecate_thing_type(thingTypeName=name, undoDeprecate=False)
    try:
        ctx.iot.delete_thing_type(thingTypeName=name)
    except Exception as err:
        if error_code(err) == "ResourceNotFoundException":
            return
        if error_code(err) == "InvalidRequestException":
            raise TransientReplicationError(f"thing type {name} cannot be deleted yet: {err}") from err
        raise
