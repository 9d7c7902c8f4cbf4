"""A fleet is built, changed and partly torn down in the primary; the secondary ends in the same state.

Everything goes through the deployed solution on the local cloud: registry events, shadow messages and
CloudTrail events in the primary, topic rules, the global table, the stream trigger, the workflow and the
worker functions in the secondary.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr_cli.inventory import as_seen_from, differences, read_inventory
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud

THINGS = 24
SENSOR, GATEWAY, LEGACY = "scenario-sensor", "scenario-gateway", "scenario-legacy"
GROUPS = (("scenario-root", None), ("scenario-eu", "scenario-root"), ("scenario-berlin", "scenario-eu"))


def name(index: int) -> str:
    return f"scenario-{index:03d}"


def policy_document(actions: list[str], topic: str) -> str:
    base = f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": f"{base}:client/${{iot:Connection.Thing.ThingName}}",
                },
                {"Effect": "Allow", "Action": actions, "Resource": f"{base}:topic/{topic}/*"},
            ],
        }
    )


def shadow_update(data: Any, thing: str, state: dict[str, Any], shadow: str | None = None) -> None:
    data.update_thing_shadow(
        thingName=thing, payload=json.dumps({"state": state}), **({"shadowName": shadow} if shadow else {})
    )


def create_device(iot: Any, index: int) -> str:
    thing = name(index)
    request: dict[str, Any] = {"thingName": thing, "attributePayload": {"attributes": {"serial": str(index)}}}
    if index % 3 == 0:
        request["thingTypeName"] = SENSOR
    elif index % 5 == 0:
        request["thingTypeName"] = GATEWAY
    iot.create_thing(**request)
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="scenario-device", target=certificate["certificateArn"])
    iot.attach_thing_principal(thingName=thing, principal=certificate["certificateArn"])
    iot.add_thing_to_thing_group(thingGroupName=GROUPS[index % 3][0], thingName=thing)
    return str(certificate["certificateId"])


def build_fleet(iot: Any, data: Any) -> dict[str, str]:
    iot.create_thing_type(
        thingTypeName=SENSOR,
        thingTypeProperties={"thingTypeDescription": "temperature sensors", "searchableAttributes": ["serial"]},
    )
    iot.create_thing_type(thingTypeName=GATEWAY)
    for group, parent in GROUPS:
        iot.create_thing_group(
            thingGroupName=group,
            **({"parentGroupName": parent} if parent else {}),
            thingGroupProperties={"thingGroupDescription": group, "attributePayload": {"attributes": {"level": group}}},
        )
    iot.create_thing_group(thingGroupName="scenario-retired")
    iot.create_policy(policyName="scenario-device", policyDocument=policy_document(["iot:Publish"], "telemetry"))
    certificates = {}
    for index in range(THINGS):
        certificates[name(index)] = create_device(iot, index)
        shadow_update(data, name(index), {"reported": {"temperature": 20 + index, "firmware": "1.0"}})
        if index % 4 == 0:
            shadow_update(data, name(index), {"desired": {"interval": 60}}, shadow="config")
    return certificates


def change_fleet(iot: Any, data: Any, certificates: dict[str, str]) -> None:
    iot.update_thing(thingName=name(0), attributePayload={"attributes": {"site": "berlin"}, "merge": True})
    iot.update_thing(thingName=name(1), attributePayload={"attributes": {"owner": "ops"}, "merge": False})
    iot.update_thing(thingName=name(3), thingTypeName=GATEWAY)
    iot.update_thing(thingName=name(6), removeThingType=True)
    iot.create_policy_version(
        policyName="scenario-device",
        policyDocument=policy_document(["iot:Publish", "iot:Receive"], "telemetry"),
        setAsDefault=True,
    )
    iot.create_policy_version(
        policyName="scenario-device", policyDocument=policy_document(["iot:Publish"], "diagnostics"), setAsDefault=False
    )
    iot.update_certificate(certificateId=certificates[name(4)], newStatus="INACTIVE")
    iot.update_certificate(certificateId=certificates[name(5)], newStatus="REVOKED")
    shadow_update(data, name(7), {"reported": {"firmware": None, "battery": 80}})
    data.delete_thing_shadow(thingName=name(8))
    data.delete_thing_shadow(thingName=name(12), shadowName="config")
    iot.remove_thing_from_thing_group(thingGroupName=GROUPS[9 % 3][0], thingName=name(9))
    iot.add_thing_to_thing_group(thingGroupName="scenario-retired", thingName=name(10))
    iot.update_thing_group(
        thingGroupName="scenario-eu",
        thingGroupProperties={"thingGroupDescription": "Europe", "attributePayload": {"attributes": {"level": "2"}}},
    )
    # A second certificate attached long after the device was created (rotation).
    rotated = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="scenario-device", target=rotated["certificateArn"])
    iot.attach_thing_principal(thingName=name(11), principal=rotated["certificateArn"])
    iot.create_policy(policyName="scenario-group", policyDocument=policy_document(["iot:Subscribe"], "fleet"))
    group_arn = iot.describe_thing_group(thingGroupName="scenario-eu")["thingGroupArn"]
    iot.attach_policy(policyName="scenario-group", target=group_arn)


def tear_down_parts(iot: Any, data: Any, certificates: dict[str, str]) -> None:
    # A device removed completely: certificate, shadows, thing.
    doomed = name(13)
    arn = iot.describe_certificate(certificateId=certificates[doomed])["certificateDescription"]["certificateArn"]
    iot.detach_thing_principal(thingName=doomed, principal=arn)
    iot.detach_policy(policyName="scenario-device", target=arn)
    iot.update_certificate(certificateId=certificates[doomed], newStatus="INACTIVE")
    iot.delete_certificate(certificateId=certificates[doomed])
    data.delete_thing_shadow(thingName=doomed)
    iot.delete_thing(thingName=doomed)
    # A thing deleted while its certificate lives on.
    survivor = name(14)
    arn = iot.describe_certificate(certificateId=certificates[survivor])["certificateDescription"]["certificateArn"]
    iot.detach_thing_principal(thingName=survivor, principal=arn)
    data.delete_thing_shadow(thingName=survivor)
    iot.delete_thing(thingName=survivor)
    # A group emptied and deleted, a type retired, a temporary policy gone.
    iot.remove_thing_from_thing_group(thingGroupName="scenario-retired", thingName=name(10))
    iot.delete_thing_group(thingGroupName="scenario-retired")
    iot.create_thing_type(thingTypeName=LEGACY)
    iot.deprecate_thing_type(thingTypeName=LEGACY)
    iot.delete_thing_type(thingTypeName=LEGACY)
    iot.deprecate_thing_type(thingTypeName=GATEWAY)
    iot.deprecate_thing_type(thingTypeName=SENSOR)
    iot.deprecate_thing_type(thingTypeName=SENSOR, undoDeprecate=True)
    iot.create_policy(policyName="scenario-temporary", policyDocument=policy_document(["iot:Publish"], "tmp"))
    target = iot.describe_certificate(certificateId=certificates[name(15)])["certificateDescription"]["certificateArn"]
    iot.attach_policy(policyName="scenario-temporary", target=target)
    iot.detach_policy(policyName="scenario-temporary", target=target)
    iot.delete_policy(policyName="scenario-temporary")


def converged(cloud: LocalCloud) -> dict[str, Any]:
    """What still differs between the primary (as the secondary should see it) and the secondary."""
    expected = as_seen_from(
        read_inventory(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY)), PRIMARY, SECONDARY
    )
    actual = read_inventory(cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY))
    return differences(expected, actual)


@pytest.mark.timeout(600)
def test_fleet_built_changed_and_torn_down_converges_in_the_secondary(
    cloud: LocalCloud, primary: Any, primary_data: Any, secondary: Any, secondary_data: Any
) -> None:
    started = time.monotonic()
    certificates = build_fleet(primary, primary_data)
    eventually(lambda: not converged(cloud), timeout=120, interval=1.0)
    assert cloud.wait_idle(120)
    assert converged(cloud) == {}
    built = time.monotonic()

    change_fleet(primary, primary_data, certificates)
    tear_down_parts(primary, primary_data, certificates)
    assert cloud.wait_idle(180)
    assert converged(cloud) == {}
    finished = time.monotonic()
    print(
        f"\nscenario: fleet of {THINGS} in parity after {built - started:.1f} s, changes after {finished - built:.1f} s"
    )

    # Spot checks of what the inventory comparison covers, stated explicitly.
    described = secondary.describe_certificate(certificateId=certificates[name(5)])["certificateDescription"]
    assert described["status"] == "REVOKED"
    assert (
        described["certificatePem"]
        == primary.describe_certificate(certificateId=certificates[name(5)])["certificateDescription"]["certificatePem"]
    )
    default = secondary.get_policy(policyName="scenario-device")["policyDocument"]
    assert f"arn:aws:iot:{SECONDARY}:{ACCOUNT_ID}:topic/telemetry/*" in default
    assert PRIMARY not in default
    assert len(secondary.list_thing_principals(thingName=name(11))["principals"]) == 2
    shadow = json.loads(secondary_data.get_thing_shadow(thingName=name(7))["payload"].read())
    assert shadow["state"]["reported"] == {"temperature": 27, "battery": 80}
    with pytest.raises(secondary.exceptions.ResourceNotFoundException):
        secondary.describe_thing(thingName=name(13))
    with pytest.raises(secondary.exceptions.ResourceNotFoundException):
        secondary.describe_certificate(certificateId=certificates[name(13)])
    assert (
        secondary.describe_certificate(certificateId=certificates[name(14)])["certificateDescription"]["status"]
        == "ACTIVE"
    )
    parents = secondary.describe_thing_group(thingGroupName="scenario-berlin")["thingGroupMetadata"]
    assert parents["parentGroupName"] == "scenario-eu"
    assert secondary.describe_thing_type(thingTypeName=GATEWAY)["thingTypeMetadata"]["deprecated"] is True
    assert secondary.describe_thing_type(thingTypeName=SENSOR)["thingTypeMetadata"]["deprecated"] is False
    dead_letters = cloud.client("dynamodb", SECONDARY).scan(
        TableName=cloud.launch.secondary_outputs["DeadLetterTableName"]
    )
    assert dead_letters["Items"] == []
