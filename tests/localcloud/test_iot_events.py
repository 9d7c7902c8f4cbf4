from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from event_fixtures import load_event

from iot_dr_local import iot_events, moto_fixes
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.moto_fixes import iot_registry
from iot_dr_local.pki import LocalCA
from iot_dr_local.rules_engine import RulesEngine

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/iot-rules"

REGISTRY_SQL = (
    "SELECT *, newuuid() AS uuid, (timestamp() / 1000) + 172800 AS expires FROM '$aws/events/#' "
    "WHERE topic(3) = 'thing' OR topic(3) = 'thingType' OR topic(3) = 'thingTypeAssociation' "
    "OR topic(3) = 'thingGroup' OR topic(3) = 'thingGroupMembership' OR topic(3) = 'thingGroupHierarchy'"
)
SHADOW_SQL = (
    "SELECT *, newuuid() AS uuid, (timestamp() / 1000) + 172800 AS expires, 'SHADOW_EVENT' AS eventType, "
    "topic() AS topic FROM '$aws/things/+/shadow/#' "
    "WHERE endswith(topic(), '/update/documents') OR endswith(topic(), '/delete/accepted')"
)

Event = tuple[str, dict[str, Any]]


@pytest.fixture
def engine(aws: str, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> Iterator[RulesEngine]:
    """The rules engine and event publisher over moto with the local cloud's fixes; thing types may be deleted
    right after their deprecation."""
    monkeypatch.setenv(iot_registry.THING_TYPE_DELETE_WAIT_ENV, "0")
    moto_fixes.install()
    rules = RulesEngine(dispatcher)
    rules.install()
    events = iot_events.install(rules)
    yield rules
    events.uninstall()
    rules.uninstall()
    moto_fixes.uninstall()


@pytest.fixture
def iot() -> Any:
    return boto3.client("iot", region_name=PRIMARY)


def enable(*event_types: str, region: str = PRIMARY) -> None:
    boto3.client("iot", region_name=region).update_event_configurations(
        eventConfigurations={name: {"Enabled": True} for name in event_types}
    )


def capture(topic_filter: str, region: str = PRIMARY) -> str:
    """A queue receiving every message published on ``topic_filter``, with its topic, through a topic rule."""
    queue_name = f"capture-{uuid.uuid4().hex[:8]}"
    queue_url = boto3.client("sqs", region_name=region).create_queue(QueueName=queue_name)["QueueUrl"]
    boto3.client("iot", region_name=region).create_topic_rule(
        ruleName=queue_name.replace("-", "_"),
        topicRulePayload={
            "sql": f"SELECT topic() AS topic, * FROM '{topic_filter}'",
            "actions": [{"sqs": {"roleArn": ROLE_ARN, "queueUrl": queue_url, "useBase64": False}}],
            "awsIotSqlVersion": "2016-03-23",
        },
    )
    return str(queue_url)


def drain(queue_url: str, dispatcher: Dispatcher, region: str = PRIMARY) -> list[Event]:
    """Every captured message as (topic, payload), in the order the payloads were stamped."""
    assert dispatcher.wait_idle(timeout=30)
    sqs = boto3.client("sqs", region_name=region)
    events: list[Event] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            payload = json.loads(message["Body"])
            events.append((payload.pop("topic"), payload))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(events, key=lambda event: (event[1].get("timestamp", 0), event[1].get("version", 0)))


def keys_of(fixture: str) -> set[str]:
    return set(load_event(fixture))


def assert_increasing_timestamps(events: list[Event]) -> None:
    stamps = [payload["timestamp"] for _, payload in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


# ------------------------------------------------------------------------------------ configuration


def test_event_configurations_start_disabled_and_are_kept_per_region(engine: RulesEngine, iot: Any) -> None:
    initial = iot.describe_event_configurations()
    assert set(initial["eventConfigurations"]) == set(iot_events.EVENT_TYPES)
    assert all(not setting["Enabled"] for setting in initial["eventConfigurations"].values())

    enable("THING", "THING_GROUP")

    primary = iot.describe_event_configurations()
    secondary = boto3.client("iot", region_name=SECONDARY).describe_event_configurations()
    enabled = {name for name, setting in primary["eventConfigurations"].items() if setting["Enabled"]}
    assert enabled == {"THING", "THING_GROUP"}
    assert not any(setting["Enabled"] for setting in secondary["eventConfigurations"].values())
    assert primary["lastModifiedDate"] >= initial["lastModifiedDate"]
    assert primary["creationDate"] == initial["creationDate"]


def test_update_event_configurations_rejects_unknown_event_types(engine: RulesEngine, iot: Any) -> None:
    with pytest.raises(ClientError) as raised:
        iot.update_event_configurations(eventConfigurations={"DEVICE": {"Enabled": True}})
    assert raised.value.response["Error"]["Code"] == "InvalidRequestException"


# ------------------------------------------------------------------------------------------- things


def test_thing_lifecycle_publishes_documented_thing_events(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    enable("THING")
    started = int(time.time() * 1000)

    created = iot.create_thing(thingName="dev-1", attributePayload={"attributes": {"serial": "1"}})
    iot.update_thing(thingName="dev-1", attributePayload={"attributes": {"site": "berlin"}, "merge": True})
    described = iot.describe_thing(thingName="dev-1")
    iot.delete_thing(thingName="dev-1")
    finished = int(time.time() * 1000)

    events = drain(queue, dispatcher)
    assert [topic for topic, _ in events] == [
        "$aws/events/thing/dev-1/created",
        "$aws/events/thing/dev-1/updated",
        "$aws/events/thing/dev-1/deleted",
    ]
    assert all(set(payload) == keys_of("registry/thing_created.json") for _, payload in events)
    assert [payload["operation"] for _, payload in events] == ["CREATED", "UPDATED", "DELETED"]
    assert [payload["versionNumber"] for _, payload in events] == [1, 2, 2]
    assert described["version"] == 2
    assert {payload["thingId"] for _, payload in events} == {created["thingId"]}
    assert events[0][1]["attributes"] == {"serial": "1"}
    assert events[1][1]["attributes"] == {"serial": "1", "site": "berlin"}
    assert all(payload["accountId"] == ACCOUNT_ID and payload["thingTypeName"] is None for _, payload in events)
    assert all(started <= payload["timestamp"] <= finished for _, payload in events)
    assert_increasing_timestamps(events)
    assert len({payload["eventId"] for _, payload in events}) == 3


def test_registry_events_are_published_only_after_the_api_call_returned(aws: str) -> None:
    workers = Dispatcher(workers=1)
    engine = RulesEngine(workers)
    engine.install()
    events = iot_events.install(engine)
    release = threading.Event()
    try:
        queue = capture("$aws/events/#")
        enable("THING")
        workers.submit(release.wait, 30)

        boto3.client("iot", region_name=PRIMARY).create_thing(thingName="dev-1")

        assert engine.busy()
        release.set()
        assert [topic for topic, _ in drain(queue, workers)] == ["$aws/events/thing/dev-1/created"]
    finally:
        release.set()
        events.uninstall()
        engine.uninstall()
        workers.shutdown()


def test_no_registry_events_when_the_type_is_disabled_or_the_call_fails(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    iot.create_thing(thingName="quiet")
    enable("THING", region=SECONDARY)
    enable("THING_GROUP")

    with pytest.raises(ClientError):
        iot.update_thing(thingName="missing", attributePayload={"attributes": {"a": "b"}})
    with pytest.raises(ClientError):
        iot.create_thing(thingName="typed", thingTypeName="no-such-type")
    iot.update_thing(thingName="quiet", attributePayload={"attributes": {"a": "b"}})

    assert drain(queue, dispatcher) == []


def test_creating_an_identical_thing_again_publishes_nothing_and_a_different_one_conflicts(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    enable("THING")
    first = iot.create_thing(thingName="dev-1", attributePayload={"attributes": {"serial": "1"}})

    again = iot.create_thing(thingName="dev-1", attributePayload={"attributes": {"serial": "1"}})
    with pytest.raises(ClientError) as raised:
        iot.create_thing(thingName="dev-1", attributePayload={"attributes": {"serial": "2"}})

    assert again["thingId"] == first["thingId"]
    assert raised.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    assert [payload["operation"] for _, payload in drain(queue, dispatcher)] == ["CREATED"]


def test_thing_type_lifecycle_publishes_documented_thing_type_events(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    enable("THING_TYPE")
    properties = {"thingTypeDescription": "light bulbs", "searchableAttributes": ["wattage", "model"]}

    iot.create_thing_type(thingTypeName="bulb", thingTypeProperties=properties)
    type_id = iot.describe_thing_type(thingTypeName="bulb")["thingTypeId"]
    iot.deprecate_thing_type(thingTypeName="bulb")
    deprecated = iot.describe_thing_type(thingTypeName="bulb")
    iot.deprecate_thing_type(thingTypeName="bulb", undoDeprecate=True)
    iot.deprecate_thing_type(thingTypeName="bulb")
    iot.delete_thing_type(thingTypeName="bulb")  # AWS deletes only deprecated types

    events = drain(queue, dispatcher)
    assert [topic for topic, _ in events] == [
        "$aws/events/thingType/bulb/created",
        "$aws/events/thingType/bulb/updated",
        "$aws/events/thingType/bulb/updated",
        "$aws/events/thingType/bulb/updated",
        "$aws/events/thingType/bulb/deleted",
    ]
    assert all(set(payload) == keys_of("registry/thing_type_updated.json") for _, payload in events)
    assert [payload["operation"] for _, payload in events] == ["CREATED", "UPDATED", "UPDATED", "UPDATED", "DELETED"]
    assert [payload["isDeprecated"] for _, payload in events] == [False, True, False, True, True]
    deprecation = events[1][1]["deprecationDate"]
    assert deprecation == int(deprecated["thingTypeMetadata"]["deprecationDate"].timestamp() * 1000)
    assert events[2][1]["deprecationDate"] is None
    assert events[3][1]["deprecationDate"] == events[4][1]["deprecationDate"] > deprecation
    assert {payload["thingTypeId"] for _, payload in events} == {type_id}
    assert events[0][1]["description"] == "light bulbs"
    assert events[0][1]["searchableAttributes"] == ["wattage", "model"]
    assert_increasing_timestamps(events)


def test_a_thing_gaining_changing_and_losing_its_type_publishes_association_events(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    enable("THING_TYPE_ASSOCIATION")
    iot.create_thing_type(thingTypeName="bulb")
    iot.create_thing_type(thingTypeName="lamp")

    thing = iot.create_thing(thingName="dev-1", thingTypeName="bulb")
    iot.update_thing(thingName="dev-1", thingTypeName="lamp")
    iot.update_thing(thingName="dev-1", attributePayload={"attributes": {"a": "b"}})
    iot.update_thing(thingName="dev-1", removeThingType=True)

    events = drain(queue, dispatcher)
    assert [(topic, payload["operation"]) for topic, payload in events] == [
        ("$aws/events/thingTypeAssociation/thing/dev-1/bulb", "ADDED"),
        ("$aws/events/thingTypeAssociation/thing/dev-1/bulb", "REMOVED"),
        ("$aws/events/thingTypeAssociation/thing/dev-1/lamp", "ADDED"),
        ("$aws/events/thingTypeAssociation/thing/dev-1/lamp", "REMOVED"),
    ]
    assert all(set(payload) == keys_of("registry/thing_type_association_added.json") for _, payload in events)
    assert {payload["thingId"] for _, payload in events} == {thing["thingId"]}
    assert_increasing_timestamps(events)


# ------------------------------------------------------------------------------------- thing groups


def test_thing_group_lifecycle_publishes_group_and_hierarchy_events(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    enable("THING_GROUP", "THING_GROUP_HIERARCHY")
    root = iot.create_thing_group(thingGroupName="root")
    properties = {"thingGroupDescription": "EU fleet", "attributePayload": {"attributes": {"site": "berlin"}}}

    child = iot.create_thing_group(thingGroupName="fleet", parentGroupName="root", thingGroupProperties=properties)
    iot.update_thing_group(thingGroupName="fleet", thingGroupProperties={"thingGroupDescription": "EU fleet 2"})
    iot.delete_thing_group(thingGroupName="fleet")
    iot.delete_thing_group(thingGroupName="already-gone")

    events = drain(queue, dispatcher)
    assert [topic for topic, _ in events] == [
        "$aws/events/thingGroup/root/created",
        "$aws/events/thingGroup/fleet/created",
        "$aws/events/thingGroupHierarchy/thingGroup/root/childThingGroup/fleet/added",
        "$aws/events/thingGroup/fleet/updated",
        "$aws/events/thingGroup/fleet/deleted",
        "$aws/events/thingGroupHierarchy/thingGroup/root/childThingGroup/fleet/removed",
    ]
    groups = [payload for topic, payload in events if "/thingGroup/" in topic and "Hierarchy" not in topic]
    hierarchy = [payload for topic, payload in events if "thingGroupHierarchy" in topic]
    assert all(set(payload) == keys_of("registry/thing_group_updated.json") for payload in groups)
    assert all(set(payload) == keys_of("registry/thing_group_hierarchy_added.json") for payload in hierarchy)
    assert groups[0]["parentGroupName"] is None and groups[0]["rootToParentThingGroups"] == []
    created = groups[1]
    assert (created["thingGroupId"], created["versionNumber"]) == (child["thingGroupId"], 1)
    assert (created["parentGroupName"], created["parentGroupId"]) == ("root", root["thingGroupId"])
    assert created["rootToParentThingGroups"] == [{"groupArn": root["thingGroupArn"], "groupId": root["thingGroupId"]}]
    assert (created["description"], created["attributes"]) == ("EU fleet", {"site": "berlin"})
    assert (groups[2]["versionNumber"], groups[2]["description"]) == (2, "EU fleet 2")
    assert [payload["operation"] for payload in hierarchy] == ["ADDED", "REMOVED"]
    assert hierarchy[0]["thingGroupId"] == root["thingGroupId"]
    assert hierarchy[0]["childGroupId"] == child["thingGroupId"]
    assert_increasing_timestamps(events)


def test_membership_changes_publish_added_and_removed_with_one_membership_id(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/events/#")
    enable("THING_GROUP_MEMBERSHIP")
    thing = iot.create_thing(thingName="dev-1")
    first = iot.create_thing_group(thingGroupName="first")
    iot.create_thing_group(thingGroupName="second")

    iot.add_thing_to_thing_group(thingGroupName="first", thingName="dev-1")
    iot.add_thing_to_thing_group(thingGroupName="first", thingName="dev-1")
    iot.update_thing_groups_for_thing(thingName="dev-1", thingGroupsToAdd=["second"], thingGroupsToRemove=["first"])
    iot.remove_thing_from_thing_group(thingGroupName="second", thingArn=thing["thingArn"])
    iot.remove_thing_from_thing_group(thingGroupName="second", thingName="dev-1")

    events = drain(queue, dispatcher)
    assert [topic for topic, _ in events] == [
        "$aws/events/thingGroupMembership/thingGroup/first/thing/dev-1/added",
        "$aws/events/thingGroupMembership/thingGroup/second/thing/dev-1/added",
        "$aws/events/thingGroupMembership/thingGroup/first/thing/dev-1/removed",
        "$aws/events/thingGroupMembership/thingGroup/second/thing/dev-1/removed",
    ]
    assert all(set(payload) == keys_of("registry/thing_group_membership_added.json") for _, payload in events)
    added_first, added_second, removed_first, removed_second = (payload for _, payload in events)
    assert (added_first["groupArn"], added_first["groupId"]) == (first["thingGroupArn"], first["thingGroupId"])
    assert (added_first["thingArn"], added_first["thingId"]) == (thing["thingArn"], thing["thingId"])
    assert added_first["membershipId"] == removed_first["membershipId"]
    assert added_second["membershipId"] == removed_second["membershipId"] != added_first["membershipId"]
    assert_increasing_timestamps(events)


def test_the_solution_rules_store_registry_and_shadow_messages_in_the_replication_table(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    table = boto3.resource("dynamodb", region_name=PRIMARY).create_table(
        TableName="replication",
        KeySchema=[{"AttributeName": "uuid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "uuid", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    action = [{"dynamoDBv2": {"roleArn": ROLE_ARN, "putItem": {"tableName": "replication"}}}]
    for name, sql in (("RegistryEventsRule", REGISTRY_SQL), ("ShadowEventsRule", SHADOW_SQL)):
        iot.create_topic_rule(ruleName=name, topicRulePayload={"sql": sql, "actions": action})
    enable("THING")

    iot.create_thing(thingName="dev-1", attributePayload={"attributes": {"serial": "1"}})
    boto3.client("iot-data", region_name=PRIMARY).update_thing_shadow(
        thingName="dev-1", payload=b'{"state": {"reported": {"temp": 21.5}}}'
    )
    assert dispatcher.wait_idle(timeout=30)

    items = {item["eventType"]: item for item in table.scan()["Items"]}
    assert set(items) == {"THING_EVENT", "SHADOW_EVENT"}
    thing = items["THING_EVENT"]
    assert set(thing) == keys_of("registry/thing_created.json") | {"uuid", "expires"}
    assert (thing["thingName"], thing["attributes"], thing["versionNumber"]) == ("dev-1", {"serial": "1"}, 1)
    shadow = items["SHADOW_EVENT"]
    assert shadow["topic"] == "$aws/things/dev-1/shadow/update/documents"
    assert shadow["current"]["state"] == {"reported": {"temp": Decimal("21.5")}}
    assert thing["expires"] == thing["timestamp"] // 1000 + 172800


# ------------------------------------------------------------------------------------------ shadows


def test_shadow_updates_and_deletes_publish_documented_shadow_messages_without_configuration(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any
) -> None:
    queue = capture("$aws/things/+/shadow/#")
    iot.create_thing(thingName="dev-1")
    data = boto3.client("iot-data", region_name=PRIMARY)
    first = {"state": {"reported": {"color": "green", "power": "on"}}}
    second = {"state": {"desired": {"color": "red"}}, "clientToken": "token-1"}

    data.update_thing_shadow(thingName="dev-1", payload=json.dumps(first).encode())
    data.update_thing_shadow(thingName="dev-1", payload=json.dumps(second).encode())
    data.update_thing_shadow(thingName="dev-1", shadowName="config", payload=json.dumps(first).encode())
    data.delete_thing_shadow(thingName="dev-1")

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in drain(queue, dispatcher):
        by_topic.setdefault(topic, []).append(payload)
    classic, named = "$aws/things/dev-1/shadow", "$aws/things/dev-1/shadow/name/config"
    assert set(by_topic) == {
        f"{classic}/update/accepted",
        f"{classic}/update/documents",
        f"{classic}/delete/accepted",
        f"{named}/update/accepted",
        f"{named}/update/documents",
    }
    accepted = sorted(by_topic[f"{classic}/update/accepted"], key=lambda payload: payload["version"])
    assert set(accepted[1]) == keys_of("shadow/update_accepted.json")
    assert accepted[1]["state"] == {"desired": {"color": "red"}}
    assert "clientToken" not in accepted[0]

    documents = sorted(by_topic[f"{classic}/update/documents"], key=lambda payload: payload["current"]["version"])
    assert set(documents[1]) == keys_of("shadow/update_documents.json")
    assert set(documents[0]) == keys_of("shadow/update_documents.json") - {"previous", "clientToken"}
    assert set(documents[1]["current"]) == set(load_event("shadow/update_documents.json")["current"])
    assert documents[1]["previous"] == documents[0]["current"]
    assert documents[1]["current"]["state"] == {"desired": {"color": "red"}, "reported": first["state"]["reported"]}
    assert (documents[1]["previous"]["version"], documents[1]["current"]["version"]) == (1, 2)
    assert documents[1]["clientToken"] == "token-1"

    (deleted,) = by_topic[f"{classic}/delete/accepted"]
    assert set(deleted) == keys_of("shadow/delete_accepted.json")
    assert deleted["version"] == 3
    (named_documents,) = by_topic[f"{named}/update/documents"]
    assert named_documents["current"]["state"] == first["state"]


def test_failed_shadow_updates_publish_nothing(engine: RulesEngine, dispatcher: Dispatcher) -> None:
    queue = capture("$aws/things/+/shadow/#")
    data = boto3.client("iot-data", region_name=PRIMARY)

    with pytest.raises(ClientError):
        data.update_thing_shadow(thingName="any-thing", payload=b'{"state": {"unknown": {"a": 1}}}')

    assert drain(queue, dispatcher) == []


# ------------------------------------------------------------------------------------- certificates


def test_registering_a_ca_signed_certificate_pending_activation_publishes_the_jitr_event(
    engine: RulesEngine, dispatcher: Dispatcher, iot: Any, tmp_path: Path
) -> None:
    queue = capture("$aws/events/certificates/registered/#")
    registered_ca, other_ca = LocalCA(tmp_path / "registered"), LocalCA(tmp_path / "other")
    ca = iot.register_ca_certificate(caCertificate=registered_ca.cert_pem, setAsActive=True, certificateMode="SNI_ONLY")
    device = registered_ca.issue_device("dev-1").cert_pem

    pending = iot.register_certificate(certificatePem=device, status="PENDING_ACTIVATION")
    iot.register_certificate(certificatePem=registered_ca.issue_device("dev-2").cert_pem, status="ACTIVE")
    iot.register_certificate(certificatePem=other_ca.issue_device("dev-3").cert_pem, status="PENDING_ACTIVATION")
    iot.register_certificate_without_ca(certificatePem=registered_ca.issue_device("dev-4").cert_pem)

    events = drain(queue, dispatcher)
    assert [topic for topic, _ in events] == [f"$aws/events/certificates/registered/{ca['certificateId']}"]
    payload = events[0][1]
    assert set(payload) == keys_of("registry/certificate_registered.json")
    assert (payload["certificateId"], payload["caCertificateId"]) == (pending["certificateId"], ca["certificateId"])
    assert (payload["certificateStatus"], payload["awsAccountId"]) == ("PENDING_ACTIVATION", ACCOUNT_ID)
    assert payload["certificateRegistrationTimestamp"] == str(payload["timestamp"])
    listed = iot.list_certificates_by_ca(caCertificateId=ca["certificateId"])["certificates"]
    assert {certificate["certificateId"] for certificate in listed} >= {pending["certificateId"]}
