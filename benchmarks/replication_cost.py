"""What replicating one new device and one shadow update costs, measured on the local cloud, and what that
means per month at the implementation guide's examples, beside the original design.

Deploys the solution, creates devices in the primary the way a provisioning script does (thing with
attributes, certificate, policy attachment, principal attachment, shadow), waits until the secondary is in
parity, then updates every device's shadow once more. Prints per event: items written and their sizes,
workflow executions, Lambda invocations and GB-seconds, AWS API calls by region and operation, the
throughput the IoT quotas allow, and the monthly cost (prices and sources in ``cost_model.py``).
Durations on the local cloud are not Lambda's: GB-seconds are indicative only.

    .venv/bin/python benchmarks/replication_cost.py --devices 20
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cost_model
from cost_model import EXAMPLES, IOT_QUOTAS_PER_SECOND, ORIGINAL_PER_DEVICE, ORIGINAL_PER_SHADOW_UPDATE, Usage

from iot_dr.core.dynamo_json import from_item
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


FUNCTION_MEMORY_GB = {
    "CaptureChangesFunction": 0.25,
    "DynamoTriggerFunction": 0.125,
    "ThingCrudFunction": 0.25,
    "ThingTypeCrudFunction": 0.25,
    "ThingGroupCrudFunction": 0.25,
    "ShadowSyncerFunction": 0.25,
    "CertificatePolicySyncFunction": 0.25,
    "ParkEventFunction": 0.125,
}


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (https://docs.aws.amazon.com/amazondynamodb/latest/
    developerguide/CapacityUnitCalculations.html), approximated from the JSON of each value."""
    return sum(len(name) + len(json.dumps(value)) for name, value in item.items())


@dataclass
class Phase:
    """What one phase (new devices, or shadow updates) cost, per event."""

    events: int
    calls: Counter[tuple[str, str, str]]
    invocations: Counter[str]
    seconds: Counter[str]
    items: list[dict[str, Any]]
    execution_seconds: float

    def per(self, value: float) -> float:
        return value / self.events

    def usage(self) -> Usage:
        items = len(self.items)
        item_bytes = sum(item_size(i) for i in self.items)
        secondary = [k for k in self.calls if k[0] != PRIMARY]
        return Usage(
            items=self.per(items),
            item_write_units=self.per(sum(cost_model.write_units(item_size(i)) for i in self.items)),
            item_bytes=self.per(item_bytes),
            ledger_write_units=self.per(sum(self.calls[k] for k in secondary if k[1:] == ("dynamodb", "put_item"))),
            ledger_read_units=self.per(sum(self.calls[k] for k in secondary if k[1:] == ("dynamodb", "get_item"))),
            express_requests=self.per(sum(self.calls[k] for k in secondary if k[2] == "start_sync_execution")),
            express_gb_seconds=self.per(self.execution_seconds * cost_model.SFN_EXPRESS_MIN_MEMORY_GB),
            lambda_invocations=self.per(sum(self.invocations.values())),
            lambda_gb_seconds=self.per(sum(s * FUNCTION_MEMORY_GB.get(f, 0.25) for f, s in self.seconds.items())),
            rule_triggers=self.per(
                sum(1 for i in self.items if i.get("eventType") != "CERTIFICATE_EVENT" and "capturedAt" not in i)
            ),
            rule_actions=self.per(sum(1 for i in self.items if "capturedAt" not in i)),
            iot_operations=self.per(sum(c for k, c in self.calls.items() if k[1] in ("iot", "iotdata"))),
        )


PRIMARY = "us-east-1"


def measure(cloud: LocalCloud, action: Any, count: int) -> Phase:
    """Run ``action`` and wait until replication settles; what it cost, from the API-call record and the table."""
    table = cloud.launch.primary_outputs["GlobalDynamoDBTableName"]
    dynamodb = cloud.client("dynamodb", cloud.primary_region)
    before = {
        i["uuid"]["S"] for page in dynamodb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]
    }
    sfn = cloud.client("stepfunctions", cloud.secondary_region)
    machine = cloud.launch.secondary_outputs["StateMachineArn"]
    known = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    cloud.api_calls.reset()
    lambda_runtime.invocation_stats(reset=True)
    action()
    assert cloud.wait_idle(600), "replication did not settle"
    items = [
        from_item(i)
        for page in dynamodb.get_paginator("scan").paginate(TableName=table)
        for i in page["Items"]
        if i["uuid"]["S"] not in before
    ]
    invocations: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for arn, stats in lambda_runtime.invocation_stats().items():
        function = arn.split(":")[-1].split("-", 1)[-1].rsplit("-", 1)[0]
        invocations[function] += int(stats["count"])
        seconds[function] += float(stats["seconds"])
    executions = [
        e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["executionArn"] not in known
    ]
    execution_seconds = sum((e["stopDate"] - e["startDate"]).total_seconds() for e in executions if e.get("stopDate"))
    return Phase(count, by_solution(cloud.api_calls.snapshot()), invocations, seconds, items, execution_seconds)


def print_phase(title: str, phase: Phase) -> None:
    usage = phase.usage()
    sizes = Counter(str(i.get("eventType")) for i in phase.items)
    print(f"\n== {title} ({phase.events} events) ==")
    print(f"items written to the global table: {usage.items:.2f} per event, {usage.item_bytes:.0f} bytes")
    for event_type, count in sorted(sizes.items()):
        size = sum(item_size(i) for i in phase.items if str(i.get("eventType")) == event_type) / count
        print(f"  {event_type:<28} {phase.per(count):5.2f} items of {size:6.0f} bytes")
    print(
        f"workflow executions: {usage.express_requests:.2f} Express (0 Standard transitions), "
        f"{phase.per(phase.execution_seconds):.2f} s of execution each event"
    )
    print(f"Lambda invocations: {usage.lambda_invocations:.2f}, {usage.lambda_gb_seconds:.4f} GB-s (local timing)")
    for function, count in sorted(phase.invocations.items()):
        print(f"  {function:<40} {phase.per(count):6.2f}")
    print("AWS API calls by the solution (region, service, operation):")
    for (region, service, operation), count in sorted(phase.calls.items()):
        print(f"  {region:<12} {service:<14} {operation:<34} {phase.per(count):6.2f}")
    print(f"  {'total':<62} {phase.per(sum(phase.calls.values())):6.2f}")


def throughput_limit(phase: Phase) -> tuple[float, str]:
    """Devices per second the default IoT quotas allow: the tightest quota divided by its calls per device."""
    per_region_operation: Counter[tuple[str, str]] = Counter()
    for (region, service, operation), count in phase.calls.items():
        if service == "iot" and operation in IOT_QUOTAS_PER_SECOND:
            per_region_operation[(region, operation)] += count
    limits = {
        f"{operation} in {region}": IOT_QUOTAS_PER_SECOND[operation] / phase.per(count)
        for (region, operation), count in per_region_operation.items()
    }
    tightest = min(limits, key=limits.__getitem__)
    return limits[tightest], tightest


def print_costs(device: Usage, shadow: Usage) -> None:
    print("\n== monthly cost, us-east-1 list prices (benchmarks/cost_model.py) ==")
    for name, (devices, updates) in EXAMPLES.items():
        for label, per_device, per_update in (
            ("this design", device, shadow),
            ("original design", ORIGINAL_PER_DEVICE, ORIGINAL_PER_SHADOW_UPDATE),
        ):
            costs = Counter(cost_model.monthly_cost(per_device, devices))
            costs.update(cost_model.monthly_cost(per_update, updates))
            detail = ", ".join(f"{service} ${cost:,.2f}" for service, cost in costs.items())
            total = sum(costs.values())
            print(
                f"  {name} ({devices:,} devices, {updates:,} shadow updates) {label:<16} ${total:>10,.2f}  ({detail})"
            )
        ours = sum(cost_model.monthly_cost(device, devices).values()) + sum(
            cost_model.monthly_cost(shadow, updates).values()
        )
        original = sum(cost_model.monthly_cost(ORIGINAL_PER_DEVICE, devices).values()) + sum(
            cost_model.monthly_cost(ORIGINAL_PER_SHADOW_UPDATE, updates).values()
        )
        print(f"  {name}: this design costs {ours / original:.2f} of the original design")


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
        data = cloud.client("iot-data", cloud.primary_region)
        iot.create_policy(policyName="bench-policy", policyDocument=device_policy(cloud.primary_region, ACCOUNT_ID))
        assert cloud.wait_idle(120)
        started = time.monotonic()
        devices = measure(cloud, lambda: provision(cloud, args.devices), args.devices)
        settled = time.monotonic()
        expected = as_seen_from(read_inventory(iot, data), cloud.primary_region, cloud.secondary_region)
        actual = read_inventory(
            cloud.client("iot", cloud.secondary_region), cloud.client("iot-data", cloud.secondary_region)
        )
        drift = differences(expected, actual)

        def update_shadows() -> None:
            for index in range(args.devices):
                payload = json.dumps({"state": {"reported": {"temperature": 22, "sample": index}}})
                data.update_thing_shadow(thingName=f"bench-{index:05d}", payload=payload)

        shadows = measure(cloud, update_shadows, args.devices)
    finally:
        cloud.stop()

    n = args.devices
    print(f"devices replicated: {n}  parity: {'yes' if not drift else 'NO ' + str(sorted(drift))}")
    print(f"replication settled after {settled - started:.2f} s ({n / (settled - started):.1f} devices/s end to end)")
    print_phase("per new device", devices)
    print_phase("per shadow update", shadows)
    limit, operation = throughput_limit(devices)
    print(f"\nthroughput at default IoT quotas: {limit:.1f} devices/s (limited by {operation})")
    print_costs(devices.usage(), shadows.usage())


if __name__ == "__main__":
    main()
