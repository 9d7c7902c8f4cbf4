"""Values that were replicated wrongly: shadow types and numbers, shadow order, Cognito targets, attachment types.

Everything goes through the deployed solution on the local cloud, and each assertion names the right value.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from event_fixtures import load_event
from local_cloud_support import PRIMARY
from replication.test_failures import dead_letters, parked, put_replication_item, secondary_thing
from waiting import eventually

from iot_dr.secondary.replicate.shadows import same_json
from iot_dr_local.cloud import LocalCloud


def reported(data: Any, thing: str, shadow: str | None = None) -> Any:
    named = {"shadowName": shadow} if shadow else {}
    try:
        document = json.loads(data.get_thing_shadow(thingName=thing, **named)["payload"].read())
    except data.exceptions.ResourceNotFoundException:
        return None
    return document.get("state", {}).get("reported")


def update(data: Any, thing: str, state: dict[str, Any], shadow: str | None = None) -> None:
    named = {"shadowName": shadow} if shadow else {}
    data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": state}}), **named)


def replicated_exactly(secondary_data: Any, thing: str, expected: dict[str, Any], shadow: str | None = None) -> bool:
    actual = reported(secondary_data, thing, shadow)
    return actual is not None and same_json(actual, expected)


@pytest.fixture
def thing(cloud: LocalCloud, primary: Any) -> str:
    name = f"values-{uuid.uuid4().hex[:10]}"
    primary.create_thing(thingName=name)
    eventually(lambda: secondary_thing(cloud, name))
    return name


@pytest.mark.parametrize(
    ("before", "after"),
    [(True, 1), (0, False), ("1", 1), (1, 1.0), ([1, 2], {"0": 1}), ({"a": 1}, [1])],
    ids=["true-to-1", "0-to-false", "string-to-number", "int-to-float", "array-to-object", "object-to-array"],
)
def test_a_value_that_changes_only_its_type_is_replicated(
    primary_data: Any, secondary_data: Any, thing: str, before: Any, after: Any
) -> None:
    update(primary_data, thing, {"v": before, "marker": 1})
    eventually(lambda: replicated_exactly(secondary_data, thing, {"v": before, "marker": 1}))
    update(primary_data, thing, {"v": after, "marker": 2})
    eventually(lambda: replicated_exactly(secondary_data, thing, {"v": after, "marker": 2}))


def test_every_value_the_shadow_service_accepts_round_trips_unchanged(
    primary_data: Any, secondary_data: Any, thing: str
) -> None:
    # Beyond DynamoDB's number type (38 digits, 1e-130 to 1e126) and at the limits of a double.
    values = {
        "digits42": 123456789012345678901234567890123456789012,
        "negative42": -987654321098765432109876543210987654321098,
        "huge": 1e200,
        "largest": 1.7976931348623157e308,
        "smallest": 5e-324,
        "precise": 0.1 + 0.2,
        "flags": [True, False, 0, 1, "true"],
        "nested": [[1, [2.5, ["deep", {"k": "v"}]]], []],
        "unicode": 'Grüße 🌍 \u0000 \\ "quoted"',
        "empty": "",
        "object": {"inner": {"zero": 0, "false": False}},
    }
    update(primary_data, thing, values, shadow="exact")
    eventually(lambda: replicated_exactly(secondary_data, thing, values, "exact"))
    # A null removes a key; the secondary removes it too.
    primary_data.update_thing_shadow(
        thingName=thing, shadowName="exact", payload=json.dumps({"state": {"reported": {"huge": None}}})
    )
    expected = {k: v for k, v in values.items() if k != "huge"}
    eventually(lambda: replicated_exactly(secondary_data, thing, expected, "exact"))


def shadow_item(thing: str, shadow: str | None, version: int, state: dict[str, Any], received_at: int) -> dict:
    """A shadow item as the topic rules write it, for an update/documents message of ``version``."""
    message = load_event("shadow/update_documents.json")
    message["previous"]["version"] = version - 1
    message["current"].update(version=version, state={"reported": state})
    prefix = f"$aws/things/{thing}/shadow" + (f"/name/{shadow}" if shadow else "")
    return {
        "document": base64.b64encode(json.dumps(message).encode()).decode(),
        "topic": f"{prefix}/update/documents",
        "receivedAt": received_at,
        "eventType": "SHADOW_EVENT",
    }


@pytest.mark.parametrize("shadow", [None, "config"], ids=["classic", "named"])
def test_an_older_shadow_version_processed_after_a_newer_one_never_wins(
    cloud: LocalCloud, secondary_data: Any, thing: str, shadow: str | None
) -> None:
    now = int(time.time() * 1000)
    put_replication_item(cloud, shadow_item(thing, shadow, 2, {"state": "newer"}, now))
    eventually(lambda: replicated_exactly(secondary_data, thing, {"state": "newer"}, shadow))
    # The rule handled version 1 later than version 2: its receive time is later, its version older.
    put_replication_item(cloud, shadow_item(thing, shadow, 1, {"state": "older"}, now + 5000))
    assert cloud.wait_idle(60)
    assert replicated_exactly(secondary_data, thing, {"state": "newer"}, shadow)


def test_a_shadow_item_whose_state_is_not_an_object_is_parked_and_never_applied(
    cloud: LocalCloud, primary_data: Any, secondary_data: Any, thing: str
) -> None:
    update(primary_data, thing, {"kept": True})
    eventually(lambda: replicated_exactly(secondary_data, thing, {"kept": True}))
    item = shadow_item(thing, None, 99, {}, int(time.time() * 1000))
    message = json.loads(base64.b64decode(item["document"]))
    message["current"]["state"] = "wipe"
    item["document"] = base64.b64encode(json.dumps(message).encode()).decode()
    put_replication_item(cloud, item)
    letter = parked(cloud, lambda letter: thing in json.dumps(letter["payload"]) and letter["stage"] == "workflow")
    assert letter["errorType"] == "MalformedEvent"
    assert replicated_exactly(secondary_data, thing, {"kept": True})


def test_a_policy_attached_to_a_cognito_identity_is_parked_as_unsupported(cloud: LocalCloud, primary: Any) -> None:
    policy = f"cognito-{uuid.uuid4().hex[:8]}"
    primary.create_policy(
        policyName=policy,
        policyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
        ),
    )
    cognito = cloud.client("cognito-identity", PRIMARY)
    pool = cognito.create_identity_pool(IdentityPoolName="devices", AllowUnauthenticatedIdentities=True)
    identity = cognito.get_id(IdentityPoolId=pool["IdentityPoolId"])["IdentityId"]
    primary.attach_policy(policyName=policy, target=identity)
    letter = parked(cloud, lambda letter: identity in json.dumps(letter["payload"]))
    assert letter["errorType"] == "UnsupportedEvent"
    assert "Cognito" in letter["reason"]
    about_identity = [other for other in dead_letters(cloud) if identity in json.dumps(other["payload"])]
    assert [other["errorType"] for other in about_identity] == ["UnsupportedEvent"]


def test_an_older_thing_version_processed_after_a_newer_one_never_wins(
    cloud: LocalCloud, primary: Any, secondary: Any, thing: str
) -> None:
    thing_id = primary.describe_thing(thingName=thing)["thingId"]
    now = int(time.time() * 1000)

    def update(version: int, serial: str, timestamp: int) -> dict[str, Any]:
        event = load_event("registry/thing_created.json")
        event.update(
            operation="UPDATED",
            thingName=thing,
            thingId=thing_id,
            versionNumber=version,
            attributes={"serial": serial},
            timestamp=timestamp,
        )
        return dict(event)

    put_replication_item(cloud, update(3, "newer", now))
    eventually(lambda: secondary.describe_thing(thingName=thing).get("attributes") == {"serial": "newer"})
    # Version 2 carries a later timestamp (the event was delayed), yet version 3 is newer.
    put_replication_item(cloud, update(2, "older", now + 5000))
    assert cloud.wait_idle(60)
    assert secondary.describe_thing(thingName=thing)["attributes"] == {"serial": "newer"}


def test_an_exclusive_thing_attachment_is_replicated_as_exclusive(primary: Any, secondary: Any, thing: str) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_AttachThingPrincipal.html (thingPrincipalType)."""
    certificate = primary.create_keys_and_certificate(setAsActive=True)
    primary.attach_thing_principal(
        thingName=thing, principal=certificate["certificateArn"], thingPrincipalType="EXCLUSIVE_THING"
    )

    def attachments() -> dict[str, str]:
        listed = secondary.list_thing_principals_v2(thingName=thing)["thingPrincipalObjects"]
        return {item["principal"].rsplit("/", 1)[-1]: item["thingPrincipalType"] for item in listed}

    eventually(lambda: attachments() == {certificate["certificateId"]: "EXCLUSIVE_THING"})
