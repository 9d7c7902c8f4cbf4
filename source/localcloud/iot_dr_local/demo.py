"""``iot-dr demo``: a fleet created in the primary replicates to the secondary on the local cloud."""

from __future__ import annotations

import sys
import time

from iot_dr_cli.fleet import create_fleet
from iot_dr_cli.inventory import as_seen_from, differences, format_parity, parity, read_inventory
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud

PROGRESS_INTERVAL = 0.5


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
        expected = as_seen_from(read_inventory(iot, iot_data), primary_region, secondary_region)
        actual = read_inventory(cloud.client("iot", secondary_region), cloud.client("iot-data", secondary_region))
        rows = parity(expected, actual)
        _say("")
        _say(format_parity(rows))
        drift = differences(expected, actual)
        if drift:
            _say(f"\nNOT in parity: {sorted(drift)}")
            return 1
        _say("\nthe secondary region is in parity with the primary")
        return 0
    finally:
        cloud.stop()
