"""Any permutation of a device's event history, with duplicates, converges to the primary's final state.

The histories are real: API calls against the primary region of the local cloud, and the events are the items
the deployed topic rules and the capture function wrote to the replication table. They are then applied in a
shuffled order, with duplicates, by the same appliers the worker functions run (ledger and version ordering
included), to a third region that starts empty. An applier that reports a missing dependency is retried later,
as the workflow does.

Recording a history goes through the whole deployed pipeline (seconds); applying one takes a fraction of a
second. So the property over orders runs on a fixed set of recorded histories that cover every operation
(``IOT_DR_CONVERGENCE_EXAMPLES`` orders, 200 by default), and a second property generates new histories end to
end (``IOT_DR_CONVERGENCE_HISTORIES`` examples, 5 by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import deque
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_cloud_support import PRIMARY
from moto.iot.models import iot_backends

from iot_dr.core.dynamo_json import from_item
from iot_dr.core.errors import DependencyNotReady
from iot_dr.core.event_types import EventType
from iot_dr.secondary.ledger import Ledger
from iot_dr.secondary.replicate.context import Secondary, certificate_id_of, named_shadows
from iot_dr.secondary.workers import APPLIERS
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud

TARGET = "eu-west-1"
TYPES = ("convergence-a", "convergence-b")
LEDGER_TABLE = "convergence-ledger"

attributes = st.dictionaries(st.sampled_from(["site", "owner", "serial"]), st.sampled_from(["x", "y", "z"]), max_size=3)
operations = st.one_of(
    st.tuples(st.just("attributes"), attributes, st.booleans()),
    st.tuples(st.just("type"), st.sampled_from([*TYPES, None])),
    st.tuples(
        st.just("shadow"),
        st.sampled_from([None, "config"]),
        st.dictionaries(st.sampled_from("abc"), st.integers(0, 9) | st.none(), min_size=1, max_size=3),
    ),
    st.tuples(st.just("delete-shadow"), st.sampled_from([None, "config"])),
    st.tuples(st.just("attach-certificate")),
    st.tuples(st.just("certificate-status"), st.sampled_from(["INACTIVE", "ACTIVE", "REVOKED"])),
    st.tuples(st.just("detach-certificate")),
    st.tuples(st.just("recreate")),
)


@pytest.fixture(scope="module")
def target(cloud: LocalCloud) -> Target:
    """The TARGET region with no pipeline of its own: only the appliers under test write to it."""
    dynamodb = cloud.client("dynamodb", TARGET)
    dynamodb.create_table(
        TableName=LEDGER_TABLE,
        KeySchema=[{"AttributeName": "resourceKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "resourceKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    secondary = Secondary(
        iot=cloud.client("iot", TARGET),
        iot_data=cloud.client("iot-data", TARGET),
        ledger=Ledger(dynamodb, LEDGER_TABLE, retention_seconds=86400),
        region=TARGET,
        primary_region=PRIMARY,
    )
    return Target(secondary, dynamodb)


class Target(NamedTuple):
    """The appliers' view of TARGET, and the DynamoDB client of its ledger table."""

    secondary: Secondary
    dynamodb: Any


def emptied(target: Target) -> Secondary:
    """``target`` with an empty registry (thing types aside) and an empty ledger, as at the start.

    Clients are made once per module: making them for each example would cost more than applying a history.
    """
    iot_backends[ACCOUNT_ID][TARGET].reset()
    for thing_type in TYPES:
        target.secondary.iot.create_thing_type(thingTypeName=thing_type)
    dynamodb = target.dynamodb
    for page in dynamodb.get_paginator("scan").paginate(TableName=LEDGER_TABLE, ProjectionExpression="resourceKey"):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=LEDGER_TABLE, Key=item)
    return target.secondary


@pytest.fixture(scope="module")
def primary_types(cloud: LocalCloud) -> None:
    for thing_type in TYPES:
        cloud.client("iot", PRIMARY).create_thing_type(thingTypeName=thing_type)


class Device:
    """Runs operations on one device in the primary, keeping them valid for IoT (as a user's would be)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.iot = cloud.client("iot", PRIMARY)
        self.data = cloud.client("iot-data", PRIMARY)
        self.name = f"convergence-{uuid.uuid4().hex[:12]}"
        self.certificates: list[str] = []
        self.issued: list[str] = []
        self.iot.create_thing(thingName=self.name)

    def run(self, operation: tuple[Any, ...]) -> None:
        kind = operation[0]
        if kind == "attributes":
            self.iot.update_thing(
                thingName=self.name, attributePayload={"attributes": operation[1], "merge": operation[2]}
            )
        elif kind == "type":
            change = {"thingTypeName": operation[1]} if operation[1] else {"removeThingType": True}
            self.iot.update_thing(thingName=self.name, **change)
        elif kind == "shadow":
            named = {"shadowName": operation[1]} if operation[1] else {}
            self.data.update_thing_shadow(
                thingName=self.name, payload=json.dumps({"state": {"reported": operation[2]}}), **named
            )
        elif kind == "delete-shadow":
            with contextlib.suppress(self.data.exceptions.ResourceNotFoundException):
                self.data.delete_thing_shadow(
                    thingName=self.name, **({"shadowName": operation[1]} if operation[1] else {})
                )
        elif kind == "attach-certificate":
            certificate = self.iot.create_keys_and_certificate(setAsActive=True)
            self.iot.attach_thing_principal(thingName=self.name, principal=certificate["certificateArn"])
            self.certificates.append(certificate["certificateArn"])
            self.issued.append(certificate["certificateArn"])
        elif kind == "certificate-status" and self.certificates:
            self.iot.update_certificate(certificateId=certificate_id_of(self.certificates[-1]), newStatus=operation[1])
        elif kind == "detach-certificate" and self.certificates:
            self.iot.detach_thing_principal(thingName=self.name, principal=self.certificates.pop())
        elif kind == "recreate":
            for principal in self.certificates:
                self.iot.detach_thing_principal(thingName=self.name, principal=principal)
            self.certificates.clear()
            self.iot.delete_thing(thingName=self.name)
            self.iot.create_thing(thingName=self.name, attributePayload={"attributes": {"generation": "2"}})


def history(cloud: LocalCloud, device: Device) -> list[dict[str, Any]]:
    """The device's events as the primary's topic rules and capture function wrote them."""
    table = cloud.launch.primary_outputs["GlobalDynamoDBTableName"]
    dynamodb = cloud.client("dynamodb", PRIMARY)
    events = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in map(from_item, page["Items"]):
            if device.name in (item.get("thingName"), *str(item.get("topic", "")).split("/")[2:3]) or (
                item.get("certificateId") and any(item["certificateId"] in arn for arn in device.issued)
            ):
                events.append(item)
    return events


def state_of(iot: Any, data: Any, thing: str) -> dict[str, Any]:
    try:
        described = iot.describe_thing(thingName=thing)
    except iot.exceptions.ResourceNotFoundException:
        return {"exists": False}
    shadows = {}
    for shadow in [None, *named_shadows(data, thing)]:
        try:
            document = json.loads(
                data.get_thing_shadow(thingName=thing, **({"shadowName": shadow} if shadow else {}))["payload"].read()
            )
        except data.exceptions.ResourceNotFoundException:
            continue
        shadows[shadow or ""] = document.get("state", {}).get("reported")
    principals = {}
    for arn in iot.list_thing_principals(thingName=thing)["principals"]:
        certificate_id = certificate_id_of(arn)
        principals[certificate_id] = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"][
            "status"
        ]
    return {
        "exists": True,
        "attributes": described.get("attributes", {}),
        "thingTypeName": described.get("thingTypeName"),
        "shadows": shadows,
        "principals": principals,
    }


def apply_in_order(target: Secondary, events: list[dict[str, Any]]) -> None:
    """Apply ``events`` in this order; a missing dependency sends the event to the back of the queue."""
    queue = deque(events)
    patience = 4 * len(events) + 4
    while queue:
        event = queue.popleft()
        try:
            APPLIERS[EventType(event["eventType"])](target, event)
        except DependencyNotReady:
            patience -= 1
            assert patience > 0, f"dependency never satisfied for {event['eventType']}"
            queue.append(event)


Recorded = tuple[str, list[dict[str, Any]], dict[str, Any]]


def record(cloud: LocalCloud, ops: list[tuple[Any, ...]]) -> Recorded:
    """Run ``ops`` on a new device in the primary: (thing name, its events, its final state in the primary)."""
    device = Device(cloud)
    for operation in ops:
        device.run(operation)
    assert cloud.wait_idle(60)
    events = history(cloud, device)
    assert events, "the primary published no events"
    return device.name, events, state_of(device.iot, device.data, device.name)


def assert_converges(target: Target, recorded: Recorded, data: st.DataObject) -> None:
    """Apply the recorded events shuffled, with drawn duplicates, to an emptied target: it ends as the primary."""
    name, events, expected = recorded
    secondary = emptied(target)
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="duplicates")
    shuffled = data.draw(st.permutations(events + duplicates), label="order")
    apply_in_order(secondary, shuffled)
    assert state_of(secondary.iot, secondary.iot_data, name) == expected


# Histories that between them use every operation, in the combinations where order matters most: a thing
# re-created with certificates, types changed back and forth, shadows deleted and rewritten, certificate status
# changed after detachment.
HISTORIES: list[list[tuple[Any, ...]]] = [
    [("attributes", {"site": "x"}, False), ("type", "convergence-a"), ("attributes", {"owner": "y"}, True)],
    [("type", "convergence-a"), ("type", None), ("type", "convergence-b"), ("attributes", {}, False)],
    [("shadow", None, {"a": 1}), ("shadow", "config", {"b": 2}), ("delete-shadow", None), ("shadow", None, {"c": 3})],
    [("shadow", None, {"a": 1, "b": None}), ("shadow", None, {"a": None}), ("delete-shadow", "config")],
    [("attach-certificate",), ("certificate-status", "INACTIVE"), ("attach-certificate",), ("detach-certificate",)],
    [("attach-certificate",), ("certificate-status", "REVOKED"), ("detach-certificate",), ("attach-certificate",)],
    [("attach-certificate",), ("shadow", None, {"a": 1}), ("recreate",), ("type", "convergence-b")],
    [
        ("type", "convergence-a"),
        ("attach-certificate",),
        ("recreate",),
        ("attach-certificate",),
        ("shadow", "config", {"a": 2}),
        ("recreate",),
        ("attributes", {"serial": "z"}, True),
    ],
]


@pytest.fixture(scope="module")
def recorded(cloud: LocalCloud, primary_types: None) -> list[Recorded]:
    return [record(cloud, ops) for ops in HISTORIES]


# More orders with IOT_DR_CONVERGENCE_EXAMPLES=<n> (each takes well under a second on an idle machine; the whole test
# can outlast the suite's 300 s per-test limit on a loaded one, so it has its own).
@pytest.mark.timeout(1200)
@settings(
    max_examples=int(os.environ.get("IOT_DR_CONVERGENCE_EXAMPLES", "200")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(index=st.integers(0, len(HISTORIES) - 1), data=st.data())
def test_any_order_of_a_recorded_history_with_duplicates_converges(
    target: Target, recorded: list[Recorded], index: int, data: st.DataObject
) -> None:
    assert_converges(target, recorded[index], data)


# More histories with IOT_DR_CONVERGENCE_HISTORIES=<n> (each takes a few seconds on the local cloud).
@settings(
    max_examples=int(os.environ.get("IOT_DR_CONVERGENCE_HISTORIES", "5")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operations, min_size=1, max_size=7), data=st.data())
def test_any_order_of_a_generated_history_with_duplicates_converges(
    cloud: LocalCloud,
    target: Target,
    primary_types: None,
    ops: list[tuple[Any, ...]],
    data: st.DataObject,
) -> None:
    assert_converges(target, record(cloud, ops), data)


def test_a_snapshot_taken_after_the_thing_was_deleted_detaches_what_older_snapshots_attached(
    target: Target, recorded: list[Recorded]
) -> None:
    """Found by the property above: a thing deleted and re-created, its events out of order. The attachment snapshot
    of the deleted incarnation lands on the re-created thing; the later "thing gone" snapshot must take it off."""
    name, events, _ = recorded[4]  # attach-certificate first: a CREATED thing, a certificate and an attachment
    created = next(e for e in events if e["eventType"] == "THING_EVENT" and e["operation"] == "CREATED")
    attached = next(e for e in events if e["eventType"] == "THING_PRINCIPALS_EVENT" and e["principals"])
    certificates = [e for e in events if e["eventType"] == "CERTIFICATE_EVENT" and e["exists"]]
    gone = {**attached, "exists": False, "principals": [], "capturedAt": attached["capturedAt"] + 1}
    secondary = emptied(target)
    apply_in_order(secondary, [created, *certificates, attached])
    assert state_of(secondary.iot, secondary.iot_data, name)["principals"]
    apply_in_order(secondary, [gone])
    assert state_of(secondary.iot, secondary.iot_data, name)["principals"] == {}
