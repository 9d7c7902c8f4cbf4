"""What replicating one new device costs: AWS API calls by operation and region, invocations and time.

Runs on the local cloud: deploys the solution, creates devices in the primary the way a provisioning
script does (thing with attributes, certificate, policy attachment, principal attachment, shadow), waits
until the secondary is in parity, and prints per-device figures.

    .venv/bin/python benchmarks/replication_cost.py --devices 20
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from iot_dr_cli.fleet import device_policy
from iot_dr_cli.inventory import as_seen_from, differences, read_inventory
from iot_dr_local import lambda_runtime
from iot_dr_local.api_calls import by_solution
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud


def provision(cloud: LocalCloud, count: int) -> None:
    iot = cloud.client("iot", cloud.primary_region)
    data = cloud.client("iot-data", cloud.primary_region)
    for index in range(count):
        name = f"bench-{index:05d}"
        iot.create_thing(thingName=name, attributePayload={"attributes": {"serial": str(index)}})
        certificate = iot.create_keys_and_certificate(setAsActive=True)
        iot.attach_policy(policyName="bench-policy", target=certificate["certificateArn"])
        iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
        data.update_thing_shadow(thingName=name, payload=json.dumps({"state": {"reported": {"temperature": 21}}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    args = parser.parse_args()
    cloud = LocalCloud()
    cloud.start()
    try:
        cloud.prepare_account()
        cloud.deploy()
        iot = cloud.client("iot", cloud.primary_region)
        iot.create_policy(policyName="bench-policy", policyDocument=device_policy(cloud.primary_region, ACCOUNT_ID))
        assert cloud.wait_idle(120)
        cloud.api_calls.reset()
        lambda_runtime.invocation_stats(reset=True)
        started = time.monotonic()
        provision(cloud, args.devices)
        provisioned = time.monotonic()
        assert cloud.wait_idle(600), "replication did not settle"
        settled = time.monotonic()
        expected = as_seen_from(
            read_inventory(iot, cloud.client("iot-data", cloud.primary_region)),
            cloud.primary_region,
            cloud.secondary_region,
        )
        actual = read_inventory(
            cloud.client("iot", cloud.secondary_region), cloud.client("iot-data", cloud.secondary_region)
        )
        drift = differences(expected, actual)
        calls = by_solution(cloud.api_calls.snapshot())
        invocations: Counter[str] = Counter()
        for arn, stats in lambda_runtime.invocation_stats().items():
            invocations[arn.split(":")[-1].split("-", 1)[-1].rsplit("-", 1)[0]] += int(stats["count"])
    finally:
        cloud.stop()

    n = args.devices
    print(f"devices replicated: {n}  parity: {'yes' if not drift else 'NO ' + str(sorted(drift))}")
    print(
        f"provisioning in the primary: {provisioned - started:.2f} s; "
        f"replication settled after {settled - started:.2f} s ({n / (settled - started):.1f} devices/s end to end)"
    )
    print("\nAWS API calls by the solution per new device (region, service, operation):")
    for (region, service, operation), count in sorted(calls.items()):
        print(f"  {region:<12} {service:<14} {operation:<34} {count / n:6.2f}")
    print(f"  {'total':<62} {sum(calls.values()) / n:6.2f}")
    print("\nLambda invocations per new device:")
    for function, count in sorted(invocations.items()):
        print(f"  {function:<50} {count / n:6.2f}")


if __name__ == "__main__":
    main()
