"""Static thing groups (with their place in the hierarchy) and group membership."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from iot_dr.core.arns import Arn
from iot_dr.core.aws import error_code
from iot_dr.core.errors import DependencyNotReady, MalformedEvent, TransientReplicationError, UnsupportedEvent
from iot_dr.secondary.ledger import Outcome, converge, order_key
from iot_dr.secondary.replicate.context import (
    OPERATION_RANK,
    Secondary,
    deleted_since,
    describe_or_none,
    ignore_not_found,
    require,
    require_int,
    require_operation,
    thing_key,
)

if TYPE_CHECKING:
    from types_boto3_iot.type_defs import ThingGroupPropertiesTypeDef

LOG = logging.getLogger(__name__)

MEMBERSHIP_RANK = {"ADDED": 0, "REMOVED": 1}


def group_key(name: str) -> str:
    """The ledger key of a thing group, ``thingGroup#<name>``."""
    return f"thingGroup#{name}"


def apply_thing_group_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Apply a THING_GROUP_EVENT registry event
    (https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html#registry-events-thinggroup)
    unless a newer one was applied; raises ``UnsupportedEvent`` for a dynamic group and ``MalformedEvent`` for a
    missing field."""
    name = require(event, "thingGroupName")
    operation = require_operation(event, OPERATION_RANK)
    if event.get("dynamicGroupMappingId"):
        # Registry events do not carry a dynamic group's query; recreating it as a static group would be wrong.
        raise UnsupportedEvent(f"thing group {name} is dynamic; dynamic groups are not replicated")
    state = {
        "exists": operation != "DELETED",
        "thingGroupName": name,
        "parentGroupName": event.get("parentGroupName") or None,
        "description": event.get("description") or "",
        "attributes": dict(event.get("attributes") or {}),
    }
    key = order_key((require_int(event, "timestamp"), int(event.get("versionNumber") or 0), OPERATION_RANK[operation]))
    return converge(ctx.ledger, group_key(name), key, state, lambda s: write_thing_group(ctx, s))


def write_thing_group(ctx: Secondary, state: dict[str, Any]) -> None:
    """Make the secondary's group match ``state`` (created under its parent, updated, or deleted). Raises
    ``DependencyNotReady`` while the parent is missing and ``TransientReplicationError`` while IoT refuses the
    deletion."""
    name, parent = state["thingGroupName"], state["parentGroupName"]
    current = describe_or_none(ctx.iot.describe_thing_group, thingGroupName=name)
    if not state["exists"]:
        if current is not None:
            try:
                ctx.iot.delete_thing_group(thingGroupName=name)
            except Exception as err:
                if error_code(err) == "InvalidRequestException":
                    raise TransientReplicationError(f"thing group {name} cannot be deleted yet: {err}") from err
                raise
        return
    properties: ThingGroupPropertiesTypeDef = {
        "thingGroupDescription": state["description"],
        "attributePayload": {"attributes": state["attributes"]},
    }
    if current is None:
        if parent and describe_or_none(ctx.iot.describe_thing_group, thingGroupName=parent) is None:
            raise DependencyNotReady(f"parent group {parent} of {name} is not replicated yet")
        request: dict[str, Any] = {"thingGroupName": name, "thingGroupProperties": properties}
        if parent:
            request["parentGroupName"] = parent
        ctx.iot.create_thing_group(**request)
        return
    current_properties = current.get("thingGroupProperties", {})
    current_parent = current.get("thingGroupMetadata", {}).get("parentGroupName")
    if current_parent != parent:
        LOG.warning(
            "thing group has a different parent in the secondary; IoT cannot move a group",
            extra={"thingGroupName": name, "parent": parent, "secondaryParent": current_parent},
        )
    if (current_properties.get("thingGroupDescription") or "") != state["description"] or (
        current_properties.get("attributePayload", {}).get("attributes") or {}
    ) != state["attributes"]:
        properties["attributePayload"]["merge"] = False
        ctx.iot.update_thing_group(thingGroupName=name, thingGroupProperties=properties)


def _name_from_arn(event: dict[str, Any], field: str) -> str:
    try:
        return Arn.parse(require(event, field)).resource_id
    except ValueError as err:
        raise MalformedEvent(f"{field} is not an ARN: {event.get(field)!r}") from err


def apply_membership_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Apply a THING_GROUP_MEMBERSHIP_EVENT (``groupArn``, ``thingArn``, ``operation`` ADDED or REMOVED,
    ``timestamp`` ms) unless a newer one was applied; raises ``MalformedEvent`` for a missing field."""
    group = _name_from_arn(event, "groupArn")
    thing = _name_from_arn(event, "thingArn")
    operation = require_operation(event, MEMBERSHIP_RANK)
    timestamp = require_int(event, "timestamp")
    state = {"member": operation == "ADDED", "thingGroupName": group, "thingName": thing, "timestamp": timestamp}
    key = order_key((timestamp, MEMBERSHIP_RANK[operation]))
    return converge(ctx.ledger, f"membership#{group}#{thing}", key, state, lambda s: write_membership(ctx, s))


def write_membership(ctx: Secondary, state: dict[str, Any]) -> None:
    """Add the thing to the group or remove it; raises ``DependencyNotReady`` while either is not replicated yet
    (nothing is done when the ledger shows it was deleted after this event)."""
    group, thing, timestamp = state["thingGroupName"], state["thingName"], state["timestamp"]
    if not state["member"]:
        ignore_not_found(ctx.iot.remove_thing_from_thing_group, thingGroupName=group, thingName=thing)
        return
    for resource_key, present in (
        (group_key(group), describe_or_none(ctx.iot.describe_thing_group, thingGroupName=group)),
        (thing_key(thing), describe_or_none(ctx.iot.describe_thing, thingName=thing)),
    ):
        if present is None:
            if deleted_since(ctx.ledger, resource_key, timestamp):
                return
            raise DependencyNotReady(f"{resource_key} is not replicated yet")
    ctx.iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)


def apply_hierarchy_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Nesting is replicated by the child's own THING_GROUP_EVENT (it names the parent); this confirms it."""
    child = require(event, "childGroupName")
    parent = require(event, "thingGroupName")
    current = describe_or_none(ctx.iot.describe_thing_group, thingGroupName=child)
    if current is not None and require(event, "operation") == "ADDED":
        actual = current.get("thingGroupMetadata", {}).get("parentGroupName")
        if actual != parent:
            LOG.warning("hierarchy differs in the secondary", extra={"child": child, "parent": parent})
    return Outcome.NOT_NEEDED
