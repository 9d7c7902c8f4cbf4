"""The deployed missing-device replication: bounded runs that resume from the cursor stored in DynamoDB, go round
the whole fleet, repair drift through the pipeline, and report things found only in the secondary (deleting them
only when asked to)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fleet_support import Fleet, out_of_sync
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr.sync.cursor import SWEEP_ID, CursorMoved, CursorStore
from iot_dr.sync.reconcile import SweepReport, report_metrics
from iot_dr_local.cloud import LocalCloud

FLEET = [f"rec-{index:03d}" for index in range(60)]
ORPHAN = "rec-zz-orphan"
# The rate limits let a run compare about 5 devices per second (half of the 10 per second quotas); with a 12 s
# timeout a run works for 2/3 of the time it has left, so no run covers the 60 devices. The last third covers a
# batch of drifted devices fed to the pipeline under the same limits.
TIMEOUT_SECONDS = 12
SCHEDULED_EVENT = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """Both regions hold the same things before the deployment (nothing to replicate); the function sweeps them."""
    local = LocalCloud(PRIMARY, SECONDARY)
    local.start()
    try:
        for region in (PRIMARY, SECONDARY):
            iot = local.client("iot", region)
            for index, name in enumerate(FLEET):
                iot.create_thing(thingName=name, attributePayload={"attributes": {"serial": str(index)}})
            iot.create_thing_group(thingGroupName="rec-group")
            shadow = json.dumps({"state": {"reported": {"on": True}}})
            local.client("iot-data", region).update_thing_shadow(thingName="rec-013", payload=shadow)
        local.prepare_account()
        local.deploy()
        configure(local, QUERY_STRING="thingName:rec-*")
        yield local
    finally:
        local.stop()


def outputs(cloud: LocalCloud) -> dict[str, str]:
    return dict(cloud.launch.primary_outputs)


def configure(cloud: LocalCloud, **variables: str) -> None:
    """Change the function's settings as a stack update of its parameters would."""
    lam = cloud.client("lambda", PRIMARY)
    name = outputs(cloud)["MissingDeviceReplicationFunctionName"]
    current = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name, Timeout=TIMEOUT_SECONDS, Environment={"Variables": {**current, **variables}}
    )


def run_once(cloud: LocalCloud) -> dict[str, Any]:
    """One scheduled run's report."""
    response = cloud.client("lambda", PRIMARY).invoke(
        FunctionName=outputs(cloud)["MissingDeviceReplicationFunctionName"], Payload=json.dumps(SCHEDULED_EVENT)
    )
    payload: dict[str, Any] = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return payload


def stored(cloud: LocalCloud) -> dict[str, Any]:
    item = cloud.client("dynamodb", PRIMARY).get_item(
        TableName=outputs(cloud)["ReconcileCursorTableName"], Key={"sweep": {"S": SWEEP_ID}}, ConsistentRead=True
    )["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


def round_of_runs(cloud: LocalCloud) -> list[dict[str, Any]]:
    """Runs until one reaches the end of the fleet, checking each resumes where the stored cursor says."""
    reports: list[dict[str, Any]] = []
    while not reports or not reports[-1]["complete"]:
        before = stored(cloud).get("cursor") if reports else None
        report = run_once(cloud)
        if reports:
            assert report["start"] == before == reports[-1]["cursor"]
        assert report["cursor_saved"]
        assert stored(cloud).get("cursor") == report["cursor"]
        reports.append(report)
        assert len(reports) < 20, reports
    return reports


def test_runs_bounded_by_the_lambda_time_cover_the_whole_fleet_from_the_stored_cursor_and_wrap_around(
    cloud: LocalCloud,
) -> None:
    secondary, data = cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY)
    secondary.update_thing(thingName="rec-007", attributePayload={"attributes": {"serial": "x"}, "merge": False})
    secondary.delete_thing(thingName="rec-021")
    # A shadow that differs: the sweep compares the device whole, not only the thing.
    data.update_thing_shadow(thingName="rec-013", payload=json.dumps({"state": {"reported": {"on": False}}}))
    # A membership only the replica has: the sweep removes it, as a repair sync would.
    secondary.add_thing_to_thing_group(thingGroupName="rec-group", thingName="rec-030")

    reports = round_of_runs(cloud)

    assert len(reports) >= 2, "one run covered the fleet: the time budget did not bound it"
    assert reports[0]["start"] is None
    assert sum(r["checked"] for r in reports) == len(FLEET)
    assert sorted(n for r in reports for n in r["drifted"]) == ["rec-007", "rec-013", "rec-021", "rec-030"]
    assert all(r["seconds"] < TIMEOUT_SECONDS for r in reports)
    item = stored(cloud)
    assert "cursor" not in item and item["rounds"] == "1"
    eventually(lambda: out_of_sync(cloud, Fleet("rec", FLEET)) == {}, timeout=180, interval=2)

    wrapped = run_once(cloud)

    assert wrapped["start"] is None and wrapped["checked"] > 0 and wrapped["drifted"] == []


def test_a_thing_only_in_the_secondary_is_reported_and_deleted_only_when_asked_to(cloud: LocalCloud) -> None:
    secondary = cloud.client("iot", SECONDARY)
    secondary.create_thing(thingName=ORPHAN)
    certificate = secondary.create_keys_and_certificate(setAsActive=False)
    secondary.attach_thing_principal(thingName=ORPHAN, principal=certificate["certificateArn"])

    reports = round_of_runs(cloud)

    assert reports[-1]["orphans"] == [ORPHAN] and reports[-1]["deleted"] == []
    assert cloud.wait_idle(60)
    assert secondary.describe_thing(thingName=ORPHAN)["thingName"] == ORPHAN

    configure(cloud, DELETE_ORPHANS="true")
    deleting = round_of_runs(cloud)

    assert deleting[-1]["deleted"] == [ORPHAN]
    eventually(lambda: ORPHAN not in [t["thingName"] for t in secondary.list_things()["things"]], timeout=180)
    certificate_id = certificate["certificateId"]
    eventually(
        lambda: certificate_id not in [c["certificateId"] for c in secondary.list_certificates()["certificates"]],
        timeout=180,
    )
    assert out_of_sync(cloud, Fleet("rec", FLEET)) == {}


def test_each_run_writes_its_figures_as_cloudwatch_metrics() -> None:
    # Lambda sends standard output to CloudWatch Logs, which turns embedded-metric-format lines into metrics.
    report = SweepReport(checked=7, drifted=["a"], orphans=["x", "y"], deleted=["x"])
    out = io.StringIO()

    report_metrics(report, out)

    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    figures = {d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]: d for d in documents}
    assert {name: d[name] for name, d in figures.items()} == {
        "DevicesCompared": 7,
        "DevicesDrifted": 1,
        "DevicesFailed": 0,
        "ThingsOnlyInSecondary": 2,
        "ThingsDeletedFromSecondary": 1,
    }
    orphans = figures["ThingsOnlyInSecondary"]
    assert orphans["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "IoTDR"
    assert orphans["Sweep"] == "MissingDeviceReplication"


def test_two_runs_cannot_both_advance_the_cursor(cloud: LocalCloud) -> None:
    store = CursorStore(cloud.client("dynamodb", PRIMARY), outputs(cloud)["ReconcileCursorTableName"], "race")
    first, second = store.load("thingName:*"), store.load("thingName:*")

    store.save(first, "thingName:*", "rec-010", round_completed=False)
    with pytest.raises(CursorMoved):
        store.save(second, "thingName:*", "rec-004", round_completed=False)

    assert store.load("thingName:*").cursor == "rec-010"
    assert store.load("thingName:rec-*").cursor is None, "a cursor belongs to its query"
