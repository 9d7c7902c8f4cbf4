"""Write a device into the global table as the capture would have (region-to-ddb): the pipeline then creates it.

Items have the shapes the primary's topic rules and capture write (``iot_dr.primary.snapshots`` for things,
certificates, policies and attachments; registry-event shapes for types, groups and memberships; the
``update/documents`` message for shadows), so the secondary applies them with the same appliers, in dependency order,
whatever order they arrive in. Types, groups and policies are written once per run (``Once``)."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from iot_dr.core.event_types import EventType
from iot_dr.core.items import ItemWriter, now_ms
from iot_dr.fleet.device import shadow_document
from iot_dr.fleet.drift import Region
from iot_dr.primary.snapshots import (
    certificate_snapshot,
    policy_snapshot,
    policy_targets_snapshot,
    thing_principals_snapshot,
    thing_snapshot,
)
from iot_dr.secondary.replicate.context import (
    certificate_id_of,
    describe_or_none,
    named_shadows,
    paginate,
)
from iot_dr.sync.copy import DeviceGone, Once

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_iot import IoTClient
    from types_boto3_iot_data import IoTDataPlaneClient

# Items the sync writes live as long as the pipeline's own (the table's TTL attribute ``expires``).
ITEM_TTL_SECONDS = 7 * 24 * 3600


def thing_type_event(iot: IoTClient, name: str) -> dict[str, Any]:
    """A THING_TYPE_EVENT body for ``name`` as it is now in the primary (DescribeThingType,
    https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeThingType.html); ClientError propagates."""
    described = iot.describe_thing_type(thingTypeName=name)
    properties = described.get("thingTypeProperties") or {}
    return {
        "eventType": str(EventType.THING_TYPE),
        "operation": "UPDATED",
        "thingTypeName": name,
        "timestamp": now_ms(),
        "description": properties.get("thingTypeDescription") or "",
        "searchableAttributes": list(properties.get("searchableAttributes") or []),
        "isDeprecated": bool((described.get("thingTypeMetadata") or {}).get("deprecated")),
    }


def thing_group_event(described: Mapping[str, Any]) -> dict[str, Any]:
    """A THING_GROUP_EVENT body from a DescribeThingGroup response
    (https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeThingGroup.html)."""
    properties = described.get("thingGroupProperties") or {}
    return {
        "eventType": str(EventType.THING_GROUP),
        "operation": "UPDATED",
        "thingGroupName": described["thingGroupName"],
        "timestamp": now_ms(),
        "versionNumber": int(described.get("version") or 0),
        "parentGroupName": (described.get("thingGroupMetadata") or {}).get("parentGroupName") or "",
        "description": properties.get("thingGroupDescription") or "",
        "attributes": dict((properties.get("attributePayload") or {}).get("attributes") or {}),
    }


def shadow_event(iot_data: IoTDataPlaneClient, thing: str, shadow: str | None) -> dict[str, Any] | None:
    """The shadow as an ``update/documents`` item (the topic rule's shape); None when it does not exist."""
    document = shadow_document(iot_data, thing, shadow)
    if document is None:
        return None
    sections = {s: v for s, v in (document.get("state") or {}).items() if s in ("desired", "reported")}
    current = {"state": sections, "version": int(document.get("version") or 0)}
    # "previous" marks the message as an update of an existing shadow, not its creation.
    message = {"previous": current, "current": current, "timestamp": int(document.get("timestamp") or 0)}
    path = f"name/{shadow}/" if shadow else ""
    return {
        "eventType": str(EventType.SHADOW),
        "topic": f"$aws/things/{thing}/shadow/{path}update/documents",
        "receivedAt": now_ms(),
        "document": base64.b64encode(json.dumps(message).encode()).decode(),
    }


def membership_event(group_arn: str, thing_arn: str, operation: str) -> dict[str, Any]:
    """A registry membership event (``operation`` ADDED or REMOVED), stamped now."""
    return {
        "eventType": str(EventType.THING_GROUP_MEMBERSHIP),
        "operation": operation,
        "groupArn": group_arn,
        "thingArn": thing_arn,
        "timestamp": now_ms(),
    }


class TableFeed:
    """Writes devices of ``primary`` into ``table`` (in the primary region) for the pipeline to replicate; items
    expire after ``ttl_seconds``."""

    def __init__(
        self, primary: Region, dynamodb: DynamoDBClient, table: str, ttl_seconds: int = ITEM_TTL_SECONDS
    ) -> None:
        self.primary = primary
        self.writer = ItemWriter(dynamodb, table, ttl_seconds)
        self.once = Once()

    def _policies(self, target_arn: str) -> None:
        snapshot = policy_targets_snapshot(self.primary.iot, target_arn)
        for name in snapshot["policies"]:
            self.once.ensure(f"policy#{name}", functools.partial(self._put_policy, name))
        self._put(snapshot)

    def _put_policy(self, name: str) -> None:
        self._put(policy_snapshot(self.primary.iot, name))

    def _put(self, body: dict[str, Any]) -> None:
        self.writer.put([body])

    def _group(self, name: str) -> None:
        def write() -> None:
            described = self.primary.iot.describe_thing_group(thingGroupName=name)
            parent = (described.get("thingGroupMetadata") or {}).get("parentGroupName")
            if parent:
                self._group(parent)
            self._put(thing_group_event(described))
            self._policies(described["thingGroupArn"])

        self.once.ensure(f"thingGroup#{name}", write)

    def apply(self, name: str, existing: bool) -> None:
        """Write the device ``name``; ``existing`` makes no difference here: the appliers converge either way."""
        iot = self.primary.iot
        thing = thing_snapshot(iot, name)
        if thing["operation"] == "DELETED":
            raise DeviceGone(f"thing {name} no longer exists in {self.primary.name}")
        type_name = thing.get("thingTypeName")
        if type_name:
            self.once.ensure(f"thingType#{type_name}", lambda: self._put(thing_type_event(iot, type_name)))
        self._put(thing)
        for group in paginate(iot, "list_thing_groups_for_thing", "thingGroups", thingName=name):
            self._group(group["groupName"])
            # The thing's ARN has the group's account and region.
            thing_arn = group["groupArn"].rsplit(":", 1)[0] + f":thing/{name}"
            self._put(membership_event(group["groupArn"], thing_arn, "ADDED"))
        principals = thing_principals_snapshot(iot, name)
        for attachment in principals["principals"]:
            arn = attachment["principal"]
            self._put(certificate_snapshot(iot, str(certificate_id_of(arn))))
            self._policies(arn)
        self._put(principals)
        for shadow in [None, *named_shadows(self.primary.iot_data, name)]:
            event = shadow_event(self.primary.iot_data, name, shadow)
            if event is not None:
                self._put(event)

    def remove_memberships(self, name: str, groups: list[str]) -> None:
        """Write REMOVED membership events of the thing ``name`` for ``groups`` (groups its replica belongs to and
        the primary's thing does not). Raises ``DeviceGone`` when the thing is gone from the primary."""
        thing = describe_or_none(self.primary.iot.describe_thing, thingName=name)
        if thing is None:
            raise DeviceGone(f"thing {name} no longer exists in {self.primary.name}")
        thing_arn = thing["thingArn"]
        prefix = thing_arn.rsplit(":", 1)[0]
        for group in groups:
            self._put(membership_event(f"{prefix}:thinggroup/{group}", thing_arn, "REMOVED"))
