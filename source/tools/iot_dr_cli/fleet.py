"""A sample fleet for the demo and the end-to-end tests: the shapes real fleets have.

A thing type, a nested group hierarchy, devices with attributes, certificates issued by IoT, a policy with
region-specific ARNs, classic and named shadows. Private keys returned by IoT are dropped on the spot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iot_dr.core.device_policy import device_policy_json

THING_TYPE = "dr-demo-sensor"
GROUPS = (("dr-demo-fleet", None), ("dr-demo-eu", "dr-demo-fleet"), ("dr-demo-berlin", "dr-demo-eu"))
POLICY = "dr-demo-device-policy"
DEMO_THING_PREFIX = "dr-demo-"


@dataclass
class Fleet:
    things: list[str] = field(default_factory=list)
    certificates: dict[str, str] = field(default_factory=dict)  # thing → certificate ID
    shadows: int = 0


def device_policy(region: str, account: str) -> str:
    """Devices may connect as their thing name and use their own topics: ARNs carry the primary's region."""
    thing = "${iot:Connection.Thing.ThingName}"
    return device_policy_json(
        f"arn:aws:iot:{region}:{account}", thing, [f"dr/{thing}/*", f"$aws/things/{thing}/shadow/*"]
    )


def create_fleet(
    iot: Any, iot_data: Any, region: str, account: str, count: int, progress: Callable[[str], None] = lambda _: None
) -> Fleet:
    fleet = Fleet()
    iot.create_thing_type(
        thingTypeName=THING_TYPE,
        thingTypeProperties={"thingTypeDescription": "demo sensors", "searchableAttributes": ["site", "serial"]},
    )
    for group, parent in GROUPS:
        iot.create_thing_group(
            thingGroupName=group,
            **({"parentGroupName": parent} if parent else {}),
            thingGroupProperties={
                "thingGroupDescription": f"{group} devices",
                "attributePayload": {"attributes": {"tier": group}},
            },
        )
    iot.create_policy(policyName=POLICY, policyDocument=device_policy(region, account))
    for index in range(count):
        name = f"{DEMO_THING_PREFIX}{index:04d}"
        request: dict[str, Any] = {
            "thingName": name,
            "attributePayload": {"attributes": {"serial": f"{index:06d}", "site": "berlin" if index % 2 else "paris"}},
        }
        if index % 2 == 0:
            request["thingTypeName"] = THING_TYPE
        iot.create_thing(**request)
        certificate = iot.create_keys_and_certificate(setAsActive=True)
        del certificate["keyPair"]
        iot.attach_policy(policyName=POLICY, target=certificate["certificateArn"])
        iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
        iot.add_thing_to_thing_group(thingGroupName=GROUPS[index % len(GROUPS)][0], thingName=name)
        iot_data.update_thing_shadow(
            thingName=name,
            payload=json.dumps({"state": {"reported": {"temperature": 20 + index % 10, "firmware": "1.0"}}}),
        )
        fleet.shadows += 1
        if index % 3 == 0:
            iot_data.update_thing_shadow(
                thingName=name, shadowName="config", payload=json.dumps({"state": {"desired": {"interval": 60}}})
            )
            fleet.shadows += 1
        fleet.things.append(name)
        fleet.certificates[name] = certificate["certificateId"]
        progress(f"created {name} in {region}")
    return fleet
