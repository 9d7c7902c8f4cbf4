"""The replicated state of one region's IoT device layer, and its comparison between two regions.

Used by the scenario tests: the secondary is in parity when
its inventory equals the primary's with policy ARNs rewritten for the secondary region.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from iot_dr.core.arns import rewrite_policy_document
from iot_dr.fleet.device import canonical_document, read_policy, shadow_state
from iot_dr.secondary.replicate.context import certificate_id_of, named_shadows, paginate


@dataclass
class Inventory:
    things: dict[str, dict[str, Any]] = field(default_factory=dict)
    thing_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    thing_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy_targets: dict[str, list[str]] = field(default_factory=dict)
    shadows: dict[str, dict[str, Any]] = field(default_factory=dict)

    KINDS = ("things", "thing_types", "thing_groups", "certificates", "policies", "policy_targets", "shadows")


# The health checker's own identity (thing, certificate, policy) exists in each region by design; it is part of
# the solution, not of the fleet, so parity leaves it out.
SOLUTION_THING_PREFIX = "iot-dr-r53-checker-"


def read_inventory(iot: Any, iot_data: Any) -> Inventory:
    inventory = Inventory()
    solution_certificates: set[str] = set()
    solution_policies: set[str] = set()
    for thing_type in paginate(iot, "list_thing_types", "thingTypes"):
        properties = thing_type.get("thingTypeProperties", {})
        inventory.thing_types[thing_type["thingTypeName"]] = {
            "deprecated": bool(thing_type.get("thingTypeMetadata", {}).get("deprecated")),
            "description": properties.get("thingTypeDescription"),
            "searchableAttributes": sorted(properties.get("searchableAttributes", [])),
        }
    for group in paginate(iot, "list_thing_groups", "thingGroups"):
        described = iot.describe_thing_group(thingGroupName=group["groupName"])
        properties = described.get("thingGroupProperties", {})
        inventory.thing_groups[group["groupName"]] = {
            "parent": described.get("thingGroupMetadata", {}).get("parentGroupName"),
            "description": properties.get("thingGroupDescription") or "",
            "attributes": properties.get("attributePayload", {}).get("attributes", {}),
        }
        policies = sorted(
            p["policyName"]
            for p in paginate(iot, "list_attached_policies", "policies", target=described["thingGroupArn"])
        )
        if policies:
            inventory.policy_targets[f"thinggroup/{group['groupName']}"] = policies
    for thing in paginate(iot, "list_things", "things"):
        name = thing["thingName"]
        principals = [arn for arn in paginate(iot, "list_thing_principals", "principals", thingName=name)]
        if name.startswith(SOLUTION_THING_PREFIX):
            for arn in principals:
                solution_certificates.add(arn)
                solution_policies.update(
                    p["policyName"] for p in paginate(iot, "list_attached_policies", "policies", target=arn)
                )
            continue
        inventory.things[name] = {
            "attributes": thing.get("attributes", {}),
            "thingTypeName": thing.get("thingTypeName"),
            "principals": sorted(filter(None, (certificate_id_of(arn) for arn in principals))),
            "groups": sorted(
                g["groupName"] for g in paginate(iot, "list_thing_groups_for_thing", "thingGroups", thingName=name)
            ),
        }
        shadows = [None, *named_shadows(iot_data, name)]
        for shadow in shadows:
            state = shadow_state(iot_data, name, shadow)
            if state is not None:
                inventory.shadows[f"{name}/{shadow or '(classic)'}"] = state
    for certificate in paginate(iot, "list_certificates", "certificates"):
        if certificate["certificateArn"] in solution_certificates:
            continue
        inventory.certificates[certificate["certificateId"]] = certificate["status"]
        policies = sorted(
            p["policyName"]
            for p in paginate(iot, "list_attached_policies", "policies", target=certificate["certificateArn"])
        )
        if policies:
            inventory.policy_targets[f"cert/{certificate['certificateId']}"] = policies
    for policy in paginate(iot, "list_policies", "policies"):
        name = policy["policyName"]
        if name in solution_policies:
            continue
        inventory.policies[name] = read_policy(iot, name)
    return inventory


def as_seen_from(inventory: Inventory, source_region: str, target_region: str) -> Inventory:
    """The primary's inventory with policy documents rewritten as the secondary should hold them."""

    def rewrite(document: str) -> str:
        return canonical_document(rewrite_policy_document(document, source_region, target_region))

    policies = {
        name: {"default": rewrite(p["default"]), "documents": sorted(rewrite(d) for d in p["documents"])}
        for name, p in inventory.policies.items()
    }
    return replace(inventory, policies=policies)


def differences(expected: Inventory, actual: Inventory) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Per kind, the keys whose values differ: key → (expected, actual); None stands for missing."""
    result: dict[str, dict[str, tuple[Any, Any]]] = {}
    for kind in Inventory.KINDS:
        left, right = getattr(expected, kind), getattr(actual, kind)
        diff = {
            key: (left.get(key), right.get(key)) for key in set(left) | set(right) if left.get(key) != right.get(key)
        }
        if diff:
            result[kind] = diff
    return result
