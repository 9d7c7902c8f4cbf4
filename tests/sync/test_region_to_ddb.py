"""iot-dr sync region-to-ddb: a fleet created before the solution was deployed reaches the secondary through the
global table and the deployed pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fleet_support import Fleet, attachment_types, group_layer, out_of_sync, seed_fleet
from local_cloud_support import PRIMARY, SECONDARY, running_cloud
from waiting import eventually

from iot_dr.fleet.drift import Region
from iot_dr.sync.feed import TableFeed
from iot_dr.sync.reconcile import sweep
from iot_dr_cli.main import main
from iot_dr_local.cloud import LocalCloud

FAST_RETRIES = {"RetryIntervalSeconds": "1", "RetryBackoffRate": "1.5", "RetryMaxAttempts": "8"}


@pytest.fixture(scope="module")
def deployed() -> Iterator[tuple[LocalCloud, Fleet]]:
    with running_cloud() as local:
        fleet = seed_fleet(local.client("iot", PRIMARY), local.client("iot-data", PRIMARY), "ddb", 5)
        local.prepare_account()
        local.deploy(**FAST_RETRIES)
        yield local, fleet


def test_fleet_fed_to_the_table_is_replicated_by_the_pipeline(
    deployed: tuple[LocalCloud, Fleet], capsys: pytest.CaptureFixture[str]
) -> None:
    cloud, fleet = deployed
    assert set(out_of_sync(cloud, fleet)) == set(fleet.names), "the deployment alone does not copy old devices"
    table = cloud.launch_config.table_name

    regions = ("--primary-region", PRIMARY, "--secondary-region", SECONDARY)
    code = main(["sync", "region-to-ddb", *regions, "--table", table, "--query-string", fleet.query])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert (summary["seen"], summary["created"], summary["failed"]) == (5, 5, 0)
    eventually(lambda: out_of_sync(cloud, fleet) == {}, timeout=180, interval=2)
    secondary, primary = cloud.client("iot", SECONDARY), cloud.client("iot", PRIMARY)
    assert group_layer(secondary, "ddb") == group_layer(primary, "ddb")
    for name in fleet.names:
        assert attachment_types(secondary, name) == attachment_types(primary, name)


def batches(count: int) -> Callable[[], bool]:
    """A sweep ``stop`` that ends a run after ``count`` batches (it is asked after each batch but the first)."""
    asked = [0]

    def stop() -> bool:
        asked[0] += 1
        return asked[0] >= count

    return stop


def test_reconciliation_sweep_goes_round_the_fleet_in_bounded_runs_repairs_drift_and_reports_orphans(
    deployed: tuple[LocalCloud, Fleet],
) -> None:
    cloud, _ = deployed
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "swp", 5)
    eventually(lambda: out_of_sync(cloud, fleet) == {}, timeout=180, interval=2)
    iot, data = cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY)
    iot.update_thing(thingName="swp-001", attributePayload={"attributes": {"serial": "x"}, "merge": False})
    data.update_thing_shadow(thingName="swp-003", payload=json.dumps({"state": {"reported": {"temperature": -1}}}))
    iot.create_thing(thingName="swp-zz-orphan")
    primary = Region(PRIMARY, cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY))
    secondary = Region(SECONDARY, iot, data)
    feed = TableFeed(primary, cloud.client("dynamodb", PRIMARY), cloud.launch_config.table_name)

    reports = [sweep(primary, secondary, feed, fleet.query, None, batches(1), workers=2)]
    while reports[-1].cursor is not None:
        reports.append(sweep(primary, secondary, feed, fleet.query, reports[-1].cursor, batches(1), workers=2))

    assert [(r.start, r.checked) for r in reports] == [(None, 2), ("swp-001", 2), ("swp-003", 2)]
    assert [name for r in reports for name in r.drifted] == ["swp-001", "swp-003"]
    assert reports[-1].complete and reports[-1].orphans == ["swp-zz-orphan"] and reports[-1].deleted == []
    eventually(lambda: out_of_sync(cloud, fleet) == {}, timeout=180, interval=2)
    assert iot.describe_thing(thingName="swp-zz-orphan")["thingName"] == "swp-zz-orphan"

    deleting = sweep(primary, secondary, feed, fleet.query, "swp-004", batches(1), delete_orphans=True)

    assert (deleting.checked, deleting.deleted) == (1, ["swp-zz-orphan"])
    eventually(lambda: "swp-zz-orphan" not in [t["thingName"] for t in iot.list_things()["things"]], timeout=180)
