"""A fleet that predates the solution, seeded in the primary, and checks of its copy in the secondary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local_cloud_support import PRIMARY, SECONDARY

from iot_dr.fleet.drift import Region, compare_fleet


def policy_document(region: str, thing: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": f"arn:aws:iot:{region}:123456789012:client/{thing}",
                }
            ],
        }
    )


@dataclass(frozen=True)
class Fleet:
    prefix: str
    names: list[str]

    @property
    def query(self) -> str:
        return f"thingName:{self.prefix}-*"


def seed_fleet(iot: Any, iot_data: Any, prefix: str, count: int) -> Fleet:
    """``count`` things: every second one with a type, nested groups (child in root, root with a policy), two
    certificates per thing (one INACTIVE, one attached exclusively), a shared policy with two versions and a policy
    of its own, a classic and a named shadow."""
    iot.create_thing_type(thingTypeName=f"{prefix}-type", thingTypeProperties={"thingTypeDescription": "sensors"})
    iot.create_thing_group(thingGroupName=f"{prefix}-root")
    iot.create_thing_group(thingGroupName=f"{prefix}-child", parentGroupName=f"{prefix}-root")
    shared = f"{prefix}-shared"
    iot.create_policy(policyName=shared, policyDocument=policy_document(PRIMARY, "old"))
    iot.create_policy_version(policyName=shared, policyDocument=policy_document(PRIMARY, "*"), setAsDefault=True)
    root_arn = iot.describe_thing_group(thingGroupName=f"{prefix}-root")["thingGroupArn"]
    iot.attach_policy(policyName=shared, target=root_arn)
    names = []
    for index in range(count):
        name = f"{prefix}-{index:03d}"
        extra = {"thingTypeName": f"{prefix}-type"} if index % 2 == 0 else {}
        iot.create_thing(thingName=name, attributePayload={"attributes": {"serial": str(index)}}, **extra)
        iot.add_thing_to_thing_group(
            thingGroupName=f"{prefix}-child" if index % 2 else f"{prefix}-root", thingName=name
        )
        iot.create_policy(policyName=f"{name}-own", policyDocument=policy_document(PRIMARY, name))
        for position, active in enumerate((True, False)):
            certificate = iot.create_keys_and_certificate(setAsActive=active)
            arn = certificate["certificateArn"]
            iot.attach_policy(policyName=shared, target=arn)
            iot.attach_policy(policyName=f"{name}-own", target=arn)
            kind = "EXCLUSIVE_THING" if position == 0 else "NON_EXCLUSIVE_THING"
            iot.attach_thing_principal(thingName=name, principal=arn, thingPrincipalType=kind)
        iot_data.update_thing_shadow(
            thingName=name, payload=json.dumps({"state": {"reported": {"temperature": index, "ok": True}}})
        )
        iot_data.update_thing_shadow(
            thingName=name, shadowName="config", payload=json.dumps({"state": {"desired": {"interval": 60}}})
        )
        names.append(name)
    return Fleet(prefix, names)


def out_of_sync(cloud: Any, fleet: Fleet) -> dict[str, Any]:
    """Devices of ``fleet`` that differ between the regions (thing, type, groups, certificates, policies with
    every version, shadows), by name with their differences."""
    primary = Region(PRIMARY, cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY))
    secondary = Region(SECONDARY, cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY))
    drifts = compare_fleet(primary, secondary, fleet.names, max_workers=4)
    return {d.name: d.as_json() for d in drifts if not d.in_sync}


def group_layer(iot: Any, prefix: str) -> dict[str, Any]:
    """The groups' hierarchy and policies, and the type, as one region sees them."""
    child = iot.describe_thing_group(thingGroupName=f"{prefix}-child")
    root = iot.describe_thing_group(thingGroupName=f"{prefix}-root")
    return {
        "childParent": child["thingGroupMetadata"].get("parentGroupName"),
        "rootPolicies": sorted(
            p["policyName"] for p in iot.list_attached_policies(target=root["thingGroupArn"])["policies"]
        ),
        "type": iot.describe_thing_type(thingTypeName=f"{prefix}-type")["thingTypeProperties"].get(
            "thingTypeDescription"
        ),
    }


def attachment_types(iot: Any, name: str) -> dict[str, str]:
    return {
        p["principal"].rsplit("/", 1)[1]: p.get("thingPrincipalType", "")
        for p in iot.list_thing_principals_v2(thingName=name)["thingPrincipalObjects"]
    }
