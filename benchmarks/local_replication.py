"""How fast new devices reach the secondary in the local cloud: devices/s and per-device replication lag.

Starts the local cloud, deploys the solution, then creates devices in the primary the way a provisioning script does
(thing with attributes, certificate, policy attachment, principal attachment, one shadow update), from ``--threads``
threads, as fast as they go or at a steady ``--rate`` devices per second. A device is complete in the secondary when
its thing (with its attributes), its certificate attached to the thing with the policy attached to it, and its shadow
are all there; its lag runs from its last primary call to that moment. (The local cloud used to run one Lambda
invocation at a time in the whole account; that mode cannot run the solution any more, whose stream trigger waits for
a workflow whose tasks are Lambda invocations too: the "before" figures are the ones measured then.)
``--failover`` also starts the failover services (two mosquitto brokers, the knot DNS server and the Route 53
emulation with the health-checker probes), as ``iot-dr local up`` does by default; the soak test is
``--devices 1000 --threads 8 --failover``. Ctrl-C or SIGTERM stops creating devices and reports what completed.

    .venv/bin/python benchmarks/local_replication.py --devices 200 --threads 8
    .venv/bin/python benchmarks/local_replication.py --devices 60 --rate 2

Figures depend on the machine and on what else runs on it; compare runs taken on the same quiet machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from moto.iot.models import iot_backends

from iot_dr_cli.fleet import device_policy
from iot_dr_local import lambda_runtime
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud
from iot_dr_local.failover import FailoverServices
from iot_dr_local.failover_plan import FailoverSettings
from iot_dr_local.locking import SERVICE_LOCK

POLICY_NAME = "bench-policy"
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 30.0


@dataclass
class Device:
    index: int
    created_at: float | None = None
    completed_at: float | None = None
    failure: str | None = None

    @property
    def name(self) -> str:
        return f"bench-{self.index:05d}"


@dataclass
class Run:
    devices: list[Device]
    started: float = field(default_factory=time.monotonic)


_clients = threading.local()


def _primary_clients(cloud: LocalCloud) -> tuple[Any, Any]:
    """One pair of clients per provisioning thread: creating a client costs more CPU than the calls it makes."""
    if not hasattr(_clients, "pair"):
        _clients.pair = (cloud.client("iot", cloud.primary_region), cloud.client("iot-data", cloud.primary_region))
    return _clients.pair  # type: ignore[no-any-return]


def create_device(cloud: LocalCloud, device: Device) -> None:
    iot, data = _primary_clients(cloud)
    try:
        iot.create_thing(thingName=device.name, attributePayload={"attributes": {"serial": str(device.index)}})
        certificate = iot.create_keys_and_certificate(setAsActive=True)
        iot.attach_policy(policyName=POLICY_NAME, target=certificate["certificateArn"])
        iot.attach_thing_principal(thingName=device.name, principal=certificate["certificateArn"])
        data.update_thing_shadow(
            thingName=device.name, payload=json.dumps({"state": {"reported": {"serial": device.index}}})
        )
    except Exception as err:  # a failed device is reported, the others go on
        device.failure = f"{type(err).__name__}: {err}"
    device.created_at = time.monotonic()


def provision(cloud: LocalCloud, devices: list[Device], threads: int, rate: float | None) -> None:
    """Create ``devices``; on an interrupt, devices not started yet are left out and the interrupt goes on."""
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        for device in devices:
            if rate:
                time.sleep(max(0.0, started + device.index / rate - time.monotonic()))
            pool.submit(create_device, cloud, device)
    except KeyboardInterrupt:
        pool.shutdown(cancel_futures=True)
        raise
    pool.shutdown()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _registered_in_secondary(cloud: LocalCloud, names: set[str]) -> set[str]:
    """Names whose thing has its attributes and a principal with the policy attached (read from the registry)."""
    backend = iot_backends[ACCOUNT_ID][cloud.secondary_region]
    with SERVICE_LOCK.held():
        attributes = {
            thing.thing_name: thing.attributes for thing in backend.things.values() if thing.thing_name in names
        }
        principals = {thing: principal for (principal, thing) in backend.principal_things if thing in names}
        with_policy = {principal for (principal, policy) in backend.principal_policies if policy == POLICY_NAME}
    return {
        name
        for name, principal in principals.items()
        if principal in with_policy and attributes.get(name, {}).get("serial") is not None
    }


def watch_secondary(cloud: LocalCloud, devices: list[Device], stop: threading.Event) -> None:
    """Mark each device complete once the secondary has all of it; the shadow is read through the API."""
    data = cloud.client("iot-data", cloud.secondary_region)
    by_name = {device.name: device for device in devices}
    started = last_progress = time.monotonic()
    while not stop.is_set():
        if time.monotonic() - last_progress >= PROGRESS_SECONDS:
            last_progress = time.monotonic()
            created = sum(1 for device in devices if device.created_at)
            complete = sum(1 for device in devices if device.completed_at)
            print(f"[{last_progress - started:6.0f} s] created {created}, complete {complete}", file=sys.stderr)
        pending = {name for name, device in by_name.items() if device.completed_at is None and device.created_at}
        for name in sorted(_registered_in_secondary(cloud, pending)):
            try:
                shadow = json.loads(data.get_thing_shadow(thingName=name)["payload"].read())
            except data.exceptions.ResourceNotFoundException:
                continue
            if shadow.get("state", {}).get("reported", {}).get("serial") == by_name[name].index:
                by_name[name].completed_at = time.monotonic()
        if all(device.completed_at or device.failure for device in devices):
            return
        stop.wait(POLL_SECONDS)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(run: Run, args: argparse.Namespace, finished: float) -> None:
    created = [device for device in run.devices if device.created_at is not None]
    done = [device for device in created if device.completed_at is not None]
    failed = [device for device in created if device.failure]
    missing = len(created) - len(done) - len(failed)
    if not created:
        print("no device was created")
        return
    last_primary = max(device.created_at or 0.0 for device in created)
    print(f"failover services: {'on' if args.failover else 'off'}")
    pace = f"{args.rate} devices/s" if args.rate else "as fast as possible"
    print(f"devices: {len(created)} of {len(run.devices)} created from {args.threads} threads, {pace}")
    print(f"primary calls took {last_primary - run.started:.1f} s")
    print(f"complete in the secondary: {len(done)}; failed in the primary: {len(failed)}; not complete: {missing}")
    for device in failed[:5]:
        print(f"  {device.name}: {device.failure}")
    if not done:
        return
    lags = [device.completed_at - device.created_at for device in done]  # type: ignore[operator]
    last_done = max(device.completed_at for device in done)  # type: ignore[type-var]
    print(f"throughput: {len(done) / (last_done - run.started):.2f} devices/s end to end")
    print(
        f"lag p50 {statistics.median(lags):.1f} s, p95 {percentile(lags, 0.95):.1f} s, max {max(lags):.1f} s "
        f"(mean {statistics.fmean(lags):.1f} s)"
    )
    print(f"last device complete {last_done - last_primary:.1f} s after the last primary call")
    print(f"measurement ended {finished - run.started:.1f} s after the start")


def report_failover(services: FailoverServices) -> None:
    """Probes the Route 53 emulation ran during the run (each in a Lambda worker process) and their verdicts."""
    assert services.emulator is not None
    for region_plan in services.plan.regions:
        if region_plan.health_check is None:
            continue
        results = services.emulator.probe_results(region_plan.health_check.health_check_id)
        healthy = sum(1 for result in results if result.healthy)
        print(f"health-check probes in {region_plan.region}: {len(results)}, healthy {healthy}")
    print(f"failover record switches: {len(services.new_switches())}")


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200, help="devices to create (default 200)")
    parser.add_argument("--threads", type=int, default=8, help="threads creating devices (default 8)")
    parser.add_argument("--rate", type=float, help="create this many devices per second instead of all at once")
    parser.add_argument("--failover", action="store_true", help="also run the failover services")
    parser.add_argument("--mqtt-port", type=int, default=0, help="brokers' port with --failover (default: a free one)")
    parser.add_argument("--dns-port", type=int, default=0, help="DNS port with --failover (default: a free one)")
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting after this many seconds")
    parser.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the secondary stack (for example RetryBackoffRate=1); repeatable",
    )
    args = parser.parse_args()
    if args.devices < 1 or args.threads < 1 or (args.rate is not None and args.rate <= 0):
        parser.error("--devices, --threads and --rate must be positive")

    cloud = LocalCloud()
    runtime_dir = Path(tempfile.mkdtemp(prefix="iot-dr-bench-"))
    cloud.start()
    try:
        cloud.prepare_account()
        cloud.deploy(health_checkers=args.failover, **dict(args.parameter))
        if args.failover:
            cloud.start_failover(runtime_dir, FailoverSettings(mqtt_port=args.mqtt_port, dns_port=args.dns_port))
        iot = cloud.client("iot", cloud.primary_region)
        iot.create_policy(policyName=POLICY_NAME, policyDocument=device_policy(cloud.primary_region, ACCOUNT_ID))
        cloud.wait_idle(120)
        run = Run([Device(index) for index in range(args.devices)])
        stop = threading.Event()
        watcher = threading.Thread(target=watch_secondary, args=(cloud, run.devices, stop), daemon=True)
        watcher.start()
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            provision(cloud, run.devices, args.threads, args.rate)
            watcher.join(timeout=args.timeout)
        except KeyboardInterrupt:
            print("interrupted: reporting what completed so far", file=sys.stderr)
        stop.set()
        watcher.join()
        report(run, args, time.monotonic())
        for arn, stats in sorted(lambda_runtime.invocation_stats().items()):
            print(
                f"  {arn.rsplit(':', 1)[-1]:<60} {int(stats['count']):5d} invocations "
                f"{int(stats['errors']):4d} errors {stats['seconds']:7.1f} s"
            )
        if cloud.failover is not None:
            report_failover(cloud.failover)
    finally:
        cloud.stop()
        shutil.rmtree(runtime_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
