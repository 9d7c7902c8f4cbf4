"""Failover and failback drill: real brokers, real DNS, Route 53 emulation probing the real health checker, and
iot-dr-pubsub.py --dr-mode as a separate process.

Timeline: the device publishes QoS 1 messages to the primary; the primary broker is killed (SIGKILL); Route 53
emulation sees the health check fail ``FAILURE_THRESHOLD`` times and points the CNAME at the secondary; the device
notices, switches and publishes there; the primary is restored; the check passes as many times and the CNAME points
back; the device fails back. Every message the broker acknowledged must have been delivered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from failover_support import CNAME, PRIMARY_TARGET, SECONDARY_TARGET

from iot_dr_local.dns_server import KnotDnsServer
from iot_dr_local.mqtt_broker import MosquittoBroker
from iot_dr_local.pki import LocalCA
from iot_dr_local.route53 import FailoverRecord, HandlerProbe, HealthCheckConfig, RecordSwitch, Route53Emulator

REPO = Path(__file__).resolve().parents[2]
PUBSUB = REPO / "source/tools/iot-dr-pubsub.py"
HANDLER_ROOT = REPO / "source/lambda/iot-dr-r53-health-checker"

REQUEST_INTERVAL = 0.5
FAILURE_THRESHOLD = 2
RECORD_TTL = 1
MESSAGE_INTERVAL = 0.025
MESSAGE_COUNT = 400
RECONNECT_JITTER = 0.2
SECRET = "drill-secret-0123456789abcdef"


@pytest.fixture
def route53(
    regional_brokers: tuple[MosquittoBroker, MosquittoBroker], dns_server: KnotDnsServer, local_ca: LocalCA
) -> Iterator[Route53Emulator]:
    checker = local_ca.issue_device("iot-dr-r53-checker-drill")
    probes: list[HandlerProbe] = []
    emulator = Route53Emulator(dns_server.updater())
    for check_id, broker in zip(("primary-check", "secondary-check"), regional_brokers, strict=True):
        environment = {
            "IOT_ENDPOINT": broker.endpoint.address,
            "IOT_PORT": str(broker.endpoint.port),
            "CA_PATH": str(broker.endpoint.ca_path),
            "CERT_PATH": str(checker.cert_path),
            "KEY_PATH": str(checker.key_path),
            "HEALTH_CHECK_SECRET": SECRET,
            "ALLOW_QUERY_SECRET": "true",
            "CLIENT_ID": "iot-dr-r53-checker-drill",
            "AWS_REGION": "us-east-1",
        }
        config = HealthCheckConfig(check_id, f"/v1/health-check?hashme={SECRET}", REQUEST_INTERVAL, FAILURE_THRESHOLD)
        probe = HandlerProbe(HANDLER_ROOT, "health_checker.handler", environment)
        probes.append(probe)
        emulator.add_health_check(config, probe)
    emulator.add_failover_record(
        FailoverRecord(CNAME, PRIMARY_TARGET, SECONDARY_TARGET, "primary-check", "secondary-check", RECORD_TTL)
    )
    emulator.start()
    yield emulator
    emulator.stop()
    for probe in probes:
        probe.close()


class DeviceProcess:
    """iot-dr-pubsub.py running as a child process; its JSON log lines are read from a file."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for line in self.log_path.read_text().splitlines():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                parsed.append({"message": line})
        return parsed

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        tail = "\n".join(json.dumps(line) for line in self.lines()[-25:])
        raise AssertionError(f"device never logged {what}; last lines:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def device(
    route53: Route53Emulator,
    regional_brokers: tuple[MosquittoBroker, MosquittoBroker],
    dns_server: KnotDnsServer,
    local_ca: LocalCA,
    work_dir: Path,
) -> Iterator[DeviceProcess]:
    identity = local_ca.issue_device("drill-device-1")
    argv = [
        sys.executable,
        str(PUBSUB),
        "--endpoint",
        CNAME,
        "--use-cname",
        "--dr-mode",
        "--dns-server",
        f"{dns_server.address}:{dns_server.port}",
        "--port",
        str(regional_brokers[0].endpoint.port),
        "--cert",
        str(identity.cert_path),
        "--key",
        str(identity.key_path),
        "--root-ca",
        str(local_ca.cert_path),
        "--client-id",
        "drill-device-1",
        "--topic",
        "dt/drill/drill-device-1",
        "--count",
        str(MESSAGE_COUNT),
        "--interval",
        str(MESSAGE_INTERVAL),
        "--reconnect-jitter",
        str(RECONNECT_JITTER),
    ]
    process = DeviceProcess(argv, work_dir / f"device-{time.time_ns()}.log")
    yield process
    process.stop()


@dataclass(frozen=True)
class Phase:
    """One region switch as the device experienced it, in seconds."""

    name: str
    detection: float
    dns_switch: float
    device_notices: float
    reconnect: float
    total: float

    def report(self) -> str:
        return (
            f"{self.name}: total {self.total:.2f} s = detection {self.detection:.2f} s + DNS switch "
            f"{self.dns_switch * 1000:.1f} ms + device sees new CNAME {self.device_notices:.2f} s + reconnect and "
            f"subscribe {self.reconnect:.2f} s"
        )


def measure(name: str, trigger_at: float, switch: RecordSwitch, notice: dict[str, Any], ready: dict[str, Any]) -> Phase:
    return Phase(
        name=name,
        detection=switch.cause.decided_at - trigger_at,
        dns_switch=switch.dns_updated_at - switch.cause.decided_at,
        device_notices=notice["at"] - switch.dns_updated_at,
        reconnect=ready["at"] - notice["at"],
        total=ready["at"] - trigger_at,
    )


def test_device_fails_over_and_back_without_losing_an_acknowledged_message(
    route53: Route53Emulator,
    regional_brokers: tuple[MosquittoBroker, MosquittoBroker],
    device: DeviceProcess,
) -> None:
    primary, _secondary = regional_brokers

    def subscribed_after(at: float) -> Callable[[dict[str, Any]], bool]:
        return lambda line: line.get("message") == "SUBSCRIBED" and line["at"] > at

    device.wait_for(subscribed_after(0), 15, "its first subscription")
    time.sleep(0.5)

    outage_at = time.time()
    primary.stop(graceful=False)
    failover_notice = device.wait_for(
        lambda line: line.get("message") == f"REGION SWITCH detected: {PRIMARY_TARGET} -> {SECONDARY_TARGET}",
        20,
        "the failover",
    )
    failover_ready = device.wait_for(subscribed_after(failover_notice["at"]), 10, "a subscription on the secondary")
    time.sleep(0.5)

    restore_at = time.time()
    primary.start()
    failback_notice = device.wait_for(
        lambda line: line.get("message") == f"REGION SWITCH detected: {SECONDARY_TARGET} -> {PRIMARY_TARGET}",
        20,
        "the failback",
    )
    failback_ready = device.wait_for(subscribed_after(failback_notice["at"]), 10, "a subscription on the primary")

    assert device.process.wait(MESSAGE_COUNT * MESSAGE_INTERVAL + 30) == 0
    summary = device.wait_for(lambda line: line.get("message") == "summary", 1, "its summary")["summary"]
    connected = [line for line in device.lines() if line.get("message") == "CONNECTED"]
    assert [line["role"] for line in connected] == ["primary", "secondary", "primary"]
    assert summary["region_switches"] == 2
    assert summary["published"] == summary["acknowledged"] == MESSAGE_COUNT
    assert sorted(summary["acknowledged_ids"]) == list(range(1, MESSAGE_COUNT + 1))
    lost = set(summary["acknowledged_ids"]) - set(summary["received_ids"])
    assert not lost, f"acknowledged but never delivered: {sorted(lost)}"

    failover_switch, failback_switch = route53.switches
    assert (failover_switch.from_target, failover_switch.to_target) == (PRIMARY_TARGET, SECONDARY_TARGET)
    assert (failback_switch.from_target, failback_switch.to_target) == (SECONDARY_TARGET, PRIMARY_TARGET)
    phases = [
        measure("failover", outage_at, failover_switch, failover_notice, failover_ready),
        measure("failback", restore_at, failback_switch, failback_notice, failback_ready),
    ]
    print(
        f"\nhealth check: interval {REQUEST_INTERVAL} s, failure threshold {FAILURE_THRESHOLD}, record TTL "
        f"{RECORD_TTL} s (device re-resolves every TTL), reconnect jitter <= {RECONNECT_JITTER} s, "
        f"message every {MESSAGE_INTERVAL} s"
    )
    for phase in phases:
        print(phase.report())
        assert phase.total < 10
