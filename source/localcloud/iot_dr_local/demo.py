"""``iot-dr demo``: a fleet created in the primary replicates to the secondary on the local cloud."""

from __future__ import annotations

import sys
import time

from iot_dr.fleet.drift import Region, compare_fleet
from iot_dr.fleet.enumeration import thing_names
from iot_dr_cli.devices_cmp import format_counts, format_table, report
from iot_dr_cli.fleet import DEMO_THING_PREFIX, create_fleet
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud

PROGRESS_INTERVAL = 0.5
DEMO_QUERY = f"thingName:{DEMO_THING_PREFIX}*"


def _say(line: str) -> None:
    print(line, flush=True)


def _secondary_counts(cloud: LocalCloud, things: list[str]) -> tuple[int, int]:
    """Devices present in the secondary, and how many of them already have their certificate attached."""
    iot = cloud.client("iot", cloud.secondary_region)
    present = attached = 0
    for name in things:
        try:
            principals = iot.list_thing_principals(thingName=name)["principals"]
        except iot.exceptions.ResourceNotFoundException:
            continue
        present += 1
        attached += bool(principals)
    return present, attached


def run_demo(count: int, primary_region: str, secondary_region: str, timeout: float = 300.0) -> int:
    if count < 1:
        print("iot-dr: error: --things must be at least 1", file=sys.stderr)
        return 2
    cloud = LocalCloud(primary_region, secondary_region)
    try:
        started = time.monotonic()
        cloud.start()
        cloud.prepare_account()
        cloud.deploy(progress=_say)
        _say(f"solution deployed in {time.monotonic() - started:.1f} s; creating {count} devices in {primary_region}")
        iot, iot_data = cloud.client("iot", primary_region), cloud.client("iot-data", primary_region)
        created = time.monotonic()
        fleet = create_fleet(iot, iot_data, primary_region, ACCOUNT_ID, count)
        _say(f"created {count} devices with certificates, policy, groups and {fleet.shadows} shadows")
        last = None
        while time.monotonic() - created < timeout:
            present, attached = _secondary_counts(cloud, fleet.things)
            if (present, attached) != last:
                _say(f"  {secondary_region}: {present}/{count} devices, {attached}/{count} with their certificate")
                last = (present, attached)
            if attached == count:
                break
            time.sleep(PROGRESS_INTERVAL)
        cloud.wait_idle()
        _say(f"replication settled {time.monotonic() - created:.1f} s after the first device was created")
        # What iot-devices-cmp.py does: every device of the fleet in either region, compared whole.
        primary, secondary = Region.limited(primary_region), Region.limited(secondary_region)
        names = {*thing_names(primary.iot, DEMO_QUERY), *thing_names(secondary.iot, DEMO_QUERY)}
        drifts = compare_fleet(primary, secondary, names)
        result = report(primary_region, secondary_region, DEMO_QUERY, drifts)
        _say(f"\niot-devices-cmp.py --query-string '{DEMO_QUERY}'")
        _say(format_table(drifts))
        _say(format_counts(result))
        if result["inSync"] != result["compared"] or result["compared"] != count:
            _say(f"\nNOT in parity: {result['compared']} devices compared, {result['inSync']} in sync of {count}")
            return 1
        _say("\nthe secondary region is in parity with the primary")
        return 0
    finally:
        cloud.stop()
