"""Region-to-region sync throughput under AWS IoT's default quotas, against the 10 devices/s ceiling.

Run: nice -n 10 .venv/bin/python benchmarks/region_sync.py [--devices 2000] [--workers 20] [--devices-off 500]

Seeds N devices in the primary of a local cloud (thing with attributes, one certificate, a policy of its own, a
classic shadow; every 4th with a thing type, every 3rd in a nested group), turns AWS-default quota emulation on with
full buckets and runs the region-to-region sync. Prints devices/s, the ratio to the ceiling
(RegisterCertificateWithoutCA: 10 per second by default, one per device), calls per device by region and
operation, throttles the emulation refused, failures, and whether every device ends in parity (checked with the
emulation off again). Then the same with
the emulation off and the client-side limits lifted, in a fresh local cloud: the engine's own speed on this machine.
Target (issue 9): >= 9.5 devices/s (>= 0.95 of the ceiling) with 2,000 devices, 0 failures, parity.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from iot_dr.core import aws
from iot_dr.fleet.drift import Region, compare_fleet
from iot_dr.fleet.rate_limit import DEFAULT_QUOTAS
from iot_dr.sync.runner import REGION_TO_REGION, sync
from iot_dr.sync.settings import SyncSettings
from iot_dr_local.cloud import LocalCloud
from iot_dr_local.quota_rules import AWS_DEFAULT_RATES

PRIMARY, SECONDARY = "us-east-1", "us-west-2"
CEILING = 10.0  # devices/s: RegisterCertificateWithoutCA's default quota, one call per device
LIFTED = 100_000.0


def seed(cloud: LocalCloud, prefix: str, count: int) -> list[str]:
    # Called with the emulation lifted: seeding is not part of the figure.
    iot, data = aws.client("iot", PRIMARY), aws.client("iot-data", PRIMARY)
    iot.create_thing_type(thingTypeName=f"{prefix}-type")
    iot.create_thing_group(thingGroupName=f"{prefix}-root")
    iot.create_thing_group(thingGroupName=f"{prefix}-child", parentGroupName=f"{prefix}-root")

    def one(index: int) -> str:
        name = f"{prefix}-{index:05d}"
        extra = {"thingTypeName": f"{prefix}-type"} if index % 4 == 0 else {}
        iot.create_thing(thingName=name, attributePayload={"attributes": {"serial": str(index)}}, **extra)
        if index % 3 == 0:
            iot.add_thing_to_thing_group(thingGroupName=f"{prefix}-child", thingName=name)
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                    "Resource": f"arn:aws:iot:{PRIMARY}:123456789012:client/{name}"}]}  # fmt: skip
        iot.create_policy(policyName=f"{name}-policy", policyDocument=json.dumps(document))
        arn = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
        iot.attach_policy(policyName=f"{name}-policy", target=arn)
        iot.attach_thing_principal(thingName=name, principal=arn)
        data.update_thing_shadow(thingName=name, payload=json.dumps({"state": {"reported": {"n": index}}}))
        return name

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def run(cloud: LocalCloud, names: list[str], prefix: str, workers: int, rates: dict[str, float]) -> dict[str, Any]:
    settings = SyncSettings(PRIMARY, SECONDARY, query_string=f"thingName:{prefix}-*", max_workers=workers, rates=rates)
    cpu_started = time.process_time()
    summary = sync(REGION_TO_REGION, settings).as_json()
    # The local cloud and the sync share this process and its GIL: CPU seconds per device bound the rate on any
    # machine that gives it one core (devicesPerCpuSecond), whatever else shares this one.
    cpu = time.process_time() - cpu_started
    refused = {}
    if cloud.quotas is not None:
        refused = {"/".join(k): v for k, v in sorted(cloud.quotas.throttled.items())}
        # The parity check reads both regions in full at its own pace: not part of the figure.
        cloud.quotas.uninstall()
    primary, secondary = (
        Region(name, cloud.client("iot", name, aws.RETRY_CONFIG), cloud.client("iot-data", name, aws.RETRY_CONFIG))
        for name in (PRIMARY, SECONDARY)
    )
    drifted = [d.name for d in compare_fleet(primary, secondary, names, max_workers=16) if not d.in_sync]
    per_device = {
        region: {op: round(n / len(names), 2) for op, n in calls.items()} for region, calls in summary["calls"].items()
    }
    return {
        "devices": len(names),
        "seconds": summary["seconds"],
        "devicesPerSecond": summary["devicesPerSecond"],
        "ratioToCeiling": round(summary["devicesPerSecond"] / CEILING, 3),
        "cpuSecondsPerDevice": round(cpu / len(names), 4),
        "devicesPerCpuSecond": round(len(names) / cpu, 2) if cpu else None,
        "failed": summary["failed"],
        "failures": dict(list(summary["failures"].items())[:5]),
        "throttlesSeenBySync": summary["throttles"],
        "throttlesRefusedByEmulation": refused,
        "callsPerDevice": per_device,
        "outOfParity": len(drifted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--devices-off", type=int, default=500, help="devices for the run with quotas off")
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args()
    cloud = LocalCloud(PRIMARY, SECONDARY, quotas="aws-default")
    cloud.start()
    try:
        assert cloud.quotas is not None
        cloud.quotas.uninstall()
        names = seed(cloud, "quota", args.devices)
        cloud.quotas.reset()
        cloud.quotas.install()
        print(json.dumps({"awsDefaultQuotas": run(cloud, names, "quota", args.workers, {})}, indent=2), flush=True)
    finally:
        cloud.stop()
    cloud = LocalCloud(PRIMARY, SECONDARY)
    cloud.start()
    try:
        names = seed(cloud, "free", args.devices_off)
        # Every operation the sync may call, including those the client-side table leaves at its default rate.
        lifted = dict.fromkeys({*DEFAULT_QUOTAS, *(operation for _, operation in AWS_DEFAULT_RATES)}, LIFTED)
        print(json.dumps({"quotasOff": run(cloud, names, "free", args.workers, lifted)}, indent=2))
    finally:
        cloud.stop()


if __name__ == "__main__":
    main()
