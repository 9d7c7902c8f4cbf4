"""Nothing is lost: failures are retried to success or parked where an operator sees and replays them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from event_fixtures import load_event
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr.core.dynamo_json import to_item
from iot_dr.core.errors import TransientReplicationError
from iot_dr.core.event_types import Family
from iot_dr.secondary.ledger import Ledger
from iot_dr.secondary.replicate.context import Secondary
from iot_dr.secondary.workers import apply_event
from iot_dr_cli.main import main
from iot_dr_cli.operations import list_dead_letters, resolve_targets
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud

# Two quick attempts: a missing dependency is parked within seconds.
DEPLOY_PARAMETERS = {
    "RetryIntervalSeconds": "1",
    "RetryBackoffRate": "1",
    "RetryMaxAttempts": "2",
    "RetryMaxDelaySeconds": "1",
}


def put_replication_item(cloud: LocalCloud, body: dict[str, Any]) -> None:
    """Write an item into the primary's replication table as a writer other than the topic rules would."""
    table = cloud.launch.primary_outputs["GlobalDynamoDBTableName"]
    item = {**body, "uuid": str(uuid.uuid4()), "expires": int(time.time()) + 3600}
    cloud.client("dynamodb", PRIMARY).put_item(TableName=table, Item=to_item(item))


def dead_letters(cloud: LocalCloud) -> list[dict[str, Any]]:
    table = cloud.launch.secondary_outputs["DeadLetterTableName"]
    items = cloud.client("dynamodb", SECONDARY).scan(TableName=table, ConsistentRead=True)["Items"]
    return [
        {
            "id": item["deadLetterId"]["S"],
            "stage": item["stage"]["S"],
            "errorType": item["errorType"]["S"],
            "reason": item["reason"]["S"],
            "payload": json.loads(item["payload"]["S"]),
        }
        for item in items
    ]


def parked(cloud: LocalCloud, predicate: Any) -> dict[str, Any]:
    return eventually(lambda: next((letter for letter in dead_letters(cloud) if predicate(letter)), None), timeout=60)


def secondary_stack(cloud: LocalCloud) -> str:
    stacks = cloud.client("cloudformation", SECONDARY).describe_stacks()["Stacks"]
    return next(s["StackName"] for s in stacks if s["StackName"].startswith("IoTDRSecondary"))


def secondary_thing(cloud: LocalCloud, name: str) -> dict[str, Any] | None:
    iot = cloud.client("iot", SECONDARY)
    try:
        return dict(iot.describe_thing(thingName=name))
    except iot.exceptions.ResourceNotFoundException:
        return None


def test_unknown_event_type_is_parked_at_the_trigger_while_other_events_flow(cloud: LocalCloud, primary: Any) -> None:
    put_replication_item(cloud, {"eventType": "MYSTERY_EVENT", "thingName": "x"})
    primary.create_thing(thingName="after-the-mystery")
    letter = parked(cloud, lambda letter: letter["payload"].get("dynamodb", {}).get("NewImage", {}).get("eventType"))
    assert letter["stage"] == "trigger"
    assert letter["errorType"] == "MalformedEvent"
    assert "MYSTERY_EVENT" in letter["reason"]
    eventually(lambda: secondary_thing(cloud, "after-the-mystery"))


def test_event_missing_a_required_field_is_parked_by_the_workflow(cloud: LocalCloud) -> None:
    event = load_event("registry/thing_created.json")
    del event["thingName"]
    put_replication_item(cloud, event)
    letter = parked(cloud, lambda letter: letter["stage"] == "workflow" and letter["errorType"] == "MalformedEvent")
    assert "thingName" in letter["reason"]
    assert letter["payload"]["eventType"] == "THING_EVENT"


@pytest.mark.timeout(600)
def test_missing_dependency_is_handed_back_to_the_stream_then_parked_and_replayed_once_it_exists(
    cloud: LocalCloud, primary: Any, secondary: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    primary.create_thing_group(thingGroupName="replay-group")
    eventually(lambda: secondary.list_thing_groups()["thingGroups"])
    membership = load_event("registry/thing_group_membership_added.json")
    membership.update(
        groupArn=f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}:thinggroup/replay-group",
        thingArn=f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}:thing/replay-thing",
        timestamp=int(time.time() * 1000),
    )
    put_replication_item(cloud, membership)
    stack = ["--region", SECONDARY, "--stack", secondary_stack(cloud)]

    def listed() -> dict[str, Any] | None:
        capsys.readouterr()
        assert main(["dead-letters", *stack, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        return next((row for row in rows if row["stage"] == "stream-on-failure"), None)

    # Never parked in the dead-letter table: the workflow hands it back to the stream, which delivers it again
    # until the mapping's retries run out and then sends it to the on-failure queue.
    letter = eventually(listed, timeout=480, interval=2)
    assert not [other for other in dead_letters(cloud) if other["errorType"] == "DependencyNotReady"]

    primary.create_thing(thingName="replay-thing")
    eventually(lambda: secondary_thing(cloud, "replay-thing"))
    assert main(["replay", *stack, "--id", letter["deadLetterId"]]) == 0
    assert json.loads(capsys.readouterr().out)["replayed"] == [letter["deadLetterId"]]
    eventually(
        lambda: secondary.list_things_in_thing_group(thingGroupName="replay-group")["things"] == ["replay-thing"]
    )
    assert listed() is None


def test_a_dependency_in_a_later_record_is_applied_when_the_stream_delivers_it_again(
    cloud: LocalCloud, primary: Any, secondary: Any
) -> None:
    """The membership's thing comes later in the stream: the workflow hands the membership back, and the stream's
    next delivery carries both, so it is applied, not parked."""
    primary.create_thing_group(thingGroupName="later-group")
    eventually(lambda: secondary.list_thing_groups(namePrefixFilter="later-group")["thingGroups"])
    membership = load_event("registry/thing_group_membership_added.json")
    membership.update(
        groupArn=f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}:thinggroup/later-group",
        thingArn=f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}:thing/later-thing",
        timestamp=int(time.time() * 1000),
    )
    put_replication_item(cloud, membership)
    time.sleep(3)  # the membership's first delivery is under way: its thing is not in the stream yet
    primary.create_thing(thingName="later-thing")
    eventually(
        lambda: secondary.list_things_in_thing_group(thingGroupName="later-group")["things"] == ["later-thing"],
        timeout=240,
    )
    assert not [letter for letter in dead_letters(cloud) if "later-thing" in letter["reason"]]


def test_replay_of_an_unknown_stack_fails_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], cloud: LocalCloud
) -> None:
    assert main(["replay", "--region", SECONDARY, "--stack", "IoTDRSecondaryMissing"]) == 1
    assert "stack IoTDRSecondaryMissing does not exist" in capsys.readouterr().err


def test_throttling_in_the_secondary_is_absorbed_with_backoff(cloud: LocalCloud, primary: Any) -> None:
    cloud.faults.throttle("iot", "create_thing", SECONDARY, times=4)
    before = cloud.faults.injected
    primary.create_thing(thingName="throttled-thing")
    eventually(lambda: secondary_thing(cloud, "throttled-thing"))
    assert cloud.faults.injected - before == 4


def test_start_execution_failures_are_reported_and_retried_by_the_stream(cloud: LocalCloud, primary: Any) -> None:
    # An error the SDK does not retry: the trigger reports the record as a batch item failure and the event
    # source mapping delivers it again.
    cloud.faults.fail("stepfunctions", "start_sync_execution", SECONDARY, times=2, code="KmsThrottlingException")
    before = cloud.faults.injected
    primary.create_thing(thingName="redelivered-thing")
    eventually(lambda: secondary_thing(cloud, "redelivered-thing"), timeout=60)
    assert cloud.faults.injected - before == 2


def test_backlog_in_the_secondary_is_applied_while_the_primary_is_down(cloud: LocalCloud, primary: Any) -> None:
    lambdas = cloud.client("lambda", SECONDARY)
    trigger = cloud.launch.secondary_outputs["DynamoTriggerFunctionName"]
    mapping = lambdas.list_event_source_mappings(FunctionName=trigger)["EventSourceMappings"][0]["UUID"]
    lambdas.update_event_source_mapping(UUID=mapping, Enabled=False)
    try:
        primary.create_policy(
            policyName="outage-policy",
            policyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "iot:Connect",
                            "Resource": f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}:client/outage",
                        }
                    ],
                }
            ),
        )
        primary.create_thing(thingName="outage-device")
        certificate = primary.create_keys_and_certificate(setAsActive=True)
        primary.attach_policy(policyName="outage-policy", target=certificate["certificateArn"])
        primary.attach_thing_principal(thingName="outage-device", principal=certificate["certificateArn"])
        assert cloud.wait_idle(60)
        cloud.faults.take_down(PRIMARY)
    finally:
        lambdas.update_event_source_mapping(UUID=mapping, Enabled=True)
    try:
        secondary = cloud.client("iot", SECONDARY)
        eventually(
            lambda: (
                secondary.list_thing_principals(thingName="outage-device")["principals"]
                if secondary_thing(cloud, "outage-device")
                else None
            ),
            timeout=60,
        )
        # The attachment is its own item, applied once the policy and the certificate are there.
        target = f"arn:aws:iot:{SECONDARY}:{ACCOUNT_ID}:cert/{certificate['certificateId']}"
        attached = eventually(lambda: secondary.list_attached_policies(target=target)["policies"], timeout=60)
        assert [p["policyName"] for p in attached] == ["outage-policy"]
        impatient = cloud.client("iot", PRIMARY, Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError, match="unavailable"):
            impatient.describe_thing(thingName="outage-device")
    finally:
        cloud.faults.bring_up(PRIMARY)


def test_items_of_every_type_and_malformed_items_are_parked_while_devices_replicate(
    cloud: LocalCloud, primary: Any, primary_data: Any
) -> None:
    """Items the topic rules never write (binary, sets, a number as event type...) reach the secondary's trigger
    with binaries base64-encoded, as Lambda delivers them
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_AttributeValue.html); each is
    parked with its reason, listed by ``iot-dr dead-letters``, and blocks none of the devices written after."""
    table = cloud.launch.primary_outputs["GlobalDynamoDBTableName"]
    expires = {"N": str(int(time.time()) + 3600)}
    every_type = {
        "b": {"B": b"\x00\xffbinary"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "n": {"N": "12.5"},
        "ns": {"NS": ["1", "2"]},
        "s": {"S": "text"},
        "ss": {"SS": ["x", "y"]},
        "null": {"NULL": True},
        "bool": {"BOOL": True},
        "l": {"L": [{"B": b"\x03"}, {"N": "1"}]},
        "m": {"M": {"inner": {"BS": [b"\x04"]}}},
    }
    malformed = {
        "typed-no-event-type": every_type,
        "binary-event-type": {**every_type, "eventType": {"B": b"\xff\xfe"}},
        "number-event-type": {"eventType": {"N": "7"}, "thingName": {"S": "x"}},
        "map-event-type": {"eventType": {"M": {"S": {"S": "THING_EVENT"}}}},
    }
    dynamodb = cloud.client("dynamodb", PRIMARY)
    for key, attributes in malformed.items():
        dynamodb.put_item(TableName=table, Item={**attributes, "uuid": {"S": key}, "expires": expires})
    devices = [f"after-malformed-{i}" for i in range(5)]
    for device in devices:
        primary.create_thing(thingName=device, attributePayload={"attributes": {"batch": "malformed"}})
        primary_data.update_thing_shadow(thingName=device, payload=json.dumps({"state": {"reported": {"on": 1}}}))

    secondary_data = cloud.client("iot-data", SECONDARY)

    def replicated(device: str) -> bool:
        thing = secondary_thing(cloud, device)
        if thing is None or thing["attributes"] != {"batch": "malformed"}:
            return False
        try:
            payload = json.loads(secondary_data.get_thing_shadow(thingName=device)["payload"].read())
        except secondary_data.exceptions.ResourceNotFoundException:
            return False
        return bool(payload["state"]["reported"] == {"on": 1})

    eventually(lambda: all(replicated(device) for device in devices), timeout=90)

    def parked_items() -> dict[str, dict[str, Any]]:
        letters = {}
        for letter in dead_letters(cloud):
            image = letter["payload"].get("dynamodb", {}).get("NewImage", {})
            key = image.get("uuid", {}).get("S")
            if key in malformed:
                letters[key] = letter
        return letters if len(letters) == len(malformed) else {}

    letters = eventually(parked_items, timeout=60)
    for key, letter in letters.items():
        assert (letter["stage"], letter["errorType"]) == ("trigger", "MalformedEvent"), key
        assert "unknown eventType" in letter["reason"], key
    assert letters["typed-no-event-type"]["payload"]["dynamodb"]["NewImage"]["b"] == {
        "B": base64.b64encode(b"\x00\xffbinary").decode()
    }
    listed = list_dead_letters(SECONDARY, resolve_targets(SECONDARY, secondary_stack(cloud), None, None))
    by_id = {row["deadLetterId"]: row for row in listed}
    assert {letter["id"] for letter in letters.values()} <= set(by_id)
    assert all("unknown eventType" in by_id[letter["id"]]["reason"] for letter in letters.values())


def test_throttling_that_outlasts_the_sdk_retries_is_retried_by_the_workflow_not_parked(cloud: LocalCloud) -> None:
    # One attempt stands for the SDK's attempts all used up (with 10 attempts the test would wait for minutes).
    impatient = Config(retries={"mode": "standard", "total_max_attempts": 1})
    ledger_table = cloud.launch.secondary_outputs["ReplicationStateTableName"]
    ctx = Secondary(
        iot=cloud.client("iot", SECONDARY, impatient),
        iot_data=cloud.client("iot-data", SECONDARY, impatient),
        ledger=Ledger(cloud.client("dynamodb", SECONDARY), ledger_table, retention_seconds=3600),
        region=SECONDARY,
        primary_region=PRIMARY,
    )
    event = load_event("registry/thing_created.json")
    event.update(thingName="throttled-beyond-sdk", timestamp=int(time.time() * 1000))
    assert cloud.wait_idle(60)
    cloud.faults.throttle("iot", "create_thing", SECONDARY, times=1)
    with pytest.raises(TransientReplicationError, match="ThrottlingException"):
        apply_event(ctx, Family.THINGS, {"eventType": "THING_EVENT", "event": event})
    # The workflow retries TransientReplicationError with backoff (see the template test); the retry succeeds.
    assert apply_event(ctx, Family.THINGS, {"eventType": "THING_EVENT", "event": event})["outcome"] == "applied"
    assert secondary_thing(cloud, "throttled-beyond-sdk")


def test_a_policy_version_deleted_while_the_capture_reads_it_does_not_delete_the_policy(
    cloud: LocalCloud, primary: Any, secondary: Any
) -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    primary.create_policy(policyName="racing-policy", policyDocument=json.dumps(document))
    eventually(lambda: describe_policy(secondary, "racing-policy"))
    assert cloud.wait_idle(60)
    # The capture's first GetPolicyVersion finds the version gone, as if deleted between the list and the get.
    cloud.faults.fail("iot", "get_policy_version", PRIMARY, times=1, code="ResourceNotFoundException", status=404)
    document["Statement"][0]["Action"] = "iot:Publish"
    primary.create_policy_version(policyName="racing-policy", policyDocument=json.dumps(document), setAsDefault=True)
    assert cloud.wait_idle(60)
    eventually(
        lambda: (
            json.loads(secondary.get_policy(policyName="racing-policy")["policyDocument"])["Statement"][0]["Action"]
            == "iot:Publish"
        )
    )
    assert len(secondary.list_policy_versions(policyName="racing-policy")["policyVersions"]) == 2


def describe_policy(iot: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(iot.get_policy(policyName=name))
    except iot.exceptions.ResourceNotFoundException:
        return None
