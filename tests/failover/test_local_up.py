"""``iot-dr local up``, ``outage`` and ``restore`` as separate processes, with a DR-mode device following the CNAME.

The story the guide tells, run for real on loopback: the local cloud serves both regions and replicates a device;
``iot-dr-pubsub.py --dr-mode`` publishes QoS 1 messages through the failover CNAME; ``iot-dr local outage <primary>``
kills the primary's broker, the Route 53 emulation sees the real health checker fail and points the CNAME at the
secondary, and the device follows; ``iot-dr local restore <primary>`` brings the broker back and the device follows the
CNAME home. No message the broker acknowledged is lost, and after ``local up`` is stopped no process it, ``restore``
or the device started is left.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from waiting import eventually

from iot_dr_local.process_refs import ProcessRef
from iot_dr_local.processes import find_binary
from iot_dr_local.run_state import LocalState, StateFile

REPO = Path(__file__).resolve().parents[2]
PUBSUB = REPO / "source/tools/iot-dr-pubsub.py"
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
REQUEST_INTERVAL = 0.5
FAILURE_THRESHOLD = 2
RECORD_TTL = 1
MESSAGE_INTERVAL = 0.025
MESSAGE_COUNT = 400
RECONNECT_JITTER = 0.2

needs_daemons = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


def iot_dr(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iot_dr_cli.main", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class Process:
    """A child process whose output goes to files the test reads while it runs."""

    def __init__(self, argv: list[str], log_dir: Path, name: str) -> None:
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def lines(self) -> list[str]:
        return self.stdout_path.read_text(errors="replace").splitlines()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        stderr = self.stderr_path.read_text(errors="replace")[-3000:]
        raise AssertionError(f"never saw {what}; exit code {self.process.poll()}; stderr tail:\n{stderr}")

    def terminate(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


class Device(Process):
    """iot-dr-pubsub.py; its stdout is one JSON object per line."""

    def records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.lines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def wait_for_record(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        line = self.wait_for(lambda text: text.startswith("{") and predicate(json.loads(text)), timeout, what)
        return dict(json.loads(line))


@pytest.fixture
def state_dir(work_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="state-", dir=work_dir))


@pytest.fixture
def local_up(state_dir: Path, work_dir: Path) -> Iterator[Process]:
    argv = [
        sys.executable, "-m", "iot_dr_cli.main", "local", "up",
        "--port", "0", "--mqtt-port", "0", "--dns-port", "0", "--state-dir", str(state_dir),
        "--health-check-interval", str(REQUEST_INTERVAL), "--failure-threshold", str(FAILURE_THRESHOLD),
        "--record-ttl", str(RECORD_TTL),
    ]  # fmt: skip
    process = Process(argv, state_dir, "local-up")
    yield process
    if process.process.poll() is None:
        process.terminate()
    # Whatever went wrong in the test, leave no daemon behind.
    state = StateFile(state_dir).read()
    for leftover in state.processes() if state else []:
        leftover.stop(signal.SIGKILL)


def ready_endpoint(process: Process) -> str:
    line = process.wait_for(lambda text: text.startswith("READY "), 120, "READY")
    match = re.fullmatch(r"READY endpoint=(http://127\.0\.0\.1:(\d+))", line)
    assert match, line
    return match.group(1)


def iot_client(endpoint: str, region: str, config: Config | None = None) -> Any:
    return boto3.client(
        "iot",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def api_answer(endpoint: str, region: str) -> str:
    """What one call (no retries) to the region's IoT API answers: "ok" or the error code."""
    try:
        iot_client(endpoint, region, Config(retries={"max_attempts": 1})).list_things(maxResults=1)
    except ClientError as err:
        return str(err.response["Error"]["Code"])
    return "ok"


def switches(process: Process) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("SWITCH ")) for line in process.lines() if line.startswith("SWITCH ")]


@dataclass(frozen=True)
class Phase:
    """One region switch, in seconds: from the trigger to the device subscribed in the other region."""

    name: str
    detection: float
    dns_switch: float
    device_notices: float
    reconnect: float

    @property
    def total(self) -> float:
        return self.detection + self.dns_switch + self.device_notices + self.reconnect

    def report(self) -> str:
        return (
            f"{self.name}: {self.total:.2f} s = detection {self.detection:.2f} s + DNS switch "
            f"{self.dns_switch * 1000:.1f} ms + device sees the new CNAME {self.device_notices:.2f} s + reconnect and "
            f"subscribe {self.reconnect:.2f} s"
        )


def phase(name: str, trigger_at: float, switch: dict[str, Any], notice: dict[str, Any], ready: dict[str, Any]) -> Phase:
    return Phase(
        name,
        detection=switch["decided_at"] - trigger_at,
        dns_switch=switch["dns_updated_at"] - switch["decided_at"],
        device_notices=notice["at"] - switch["dns_updated_at"],
        reconnect=ready["at"] - notice["at"],
    )


def start_device(state: LocalState, log_dir: Path) -> Device:
    assert state.dns and state.device and state.ca_path
    broker_port = state.brokers[PRIMARY].port
    argv = [
        sys.executable, str(PUBSUB), "--endpoint", state.dns.record, "--use-cname", "--dr-mode",
        "--dns-server", f"{state.dns.address}:{state.dns.port}", "--port", str(broker_port),
        "--cert", state.device.cert_path, "--key", state.device.key_path, "--root-ca", state.ca_path,
        "--client-id", state.device.name, "--topic", f"dt/local-up/{state.device.name}",
        "--count", str(MESSAGE_COUNT), "--interval", str(MESSAGE_INTERVAL),
        "--reconnect-jitter", str(RECONNECT_JITTER),
    ]  # fmt: skip
    return Device(argv, log_dir, "device")


@needs_daemons
def test_local_up_serves_and_fails_over_a_dr_device_on_outage_and_back_on_restore_leaving_no_process(
    local_up: Process, state_dir: Path
) -> None:
    eventually(StateFile(state_dir).path.exists)
    early = iot_dr("local", "outage", PRIMARY, "--state-dir", str(state_dir))
    assert (early.returncode, "still starting" in early.stderr) == (1, True)
    second = iot_dr("local", "up", "--port", "0", "--state-dir", str(state_dir))
    assert (second.returncode, "already running" in second.stderr) == (1, True)

    endpoint = ready_endpoint(local_up)
    state = StateFile(state_dir).read()
    assert state is not None and state.endpoint == endpoint
    assert {region: broker.role for region, broker in state.brokers.items()} == {
        PRIMARY: "primary",
        SECONDARY: "secondary",
    }
    started = [ref for ref in [state.server, *state.processes()] if ref.alive()]
    assert len(started) == 4  # local up, two brokers, knot

    iot_client(endpoint, PRIMARY).create_thing(thingName="sensor-1", attributePayload={"attributes": {"floor": "3"}})
    replicated = eventually(
        lambda: iot_client(endpoint, SECONDARY).list_things(attributeName="floor", attributeValue="3")["things"]
    )
    assert [thing["thingName"] for thing in replicated] == ["sensor-1"]

    unknown = iot_dr("local", "outage", "eu-central-1", "--state-dir", str(state_dir))
    assert unknown.returncode == 2
    assert "unknown region eu-central-1" in unknown.stderr

    device = start_device(state, state_dir)
    try:
        device.wait_for_record(lambda r: r.get("message") == "SUBSCRIBED", 20, "the first subscription")
        time.sleep(0.5)

        outage = iot_dr("local", "outage", PRIMARY, "--state-dir", str(state_dir))
        assert outage.returncode == 0, outage.stderr
        primary_broker = state.brokers[PRIMARY].process
        assert primary_broker is not None and not primary_broker.alive()
        # The region's API is down too, as in a regional outage; the other region answers.
        assert (api_answer(endpoint, PRIMARY), api_answer(endpoint, SECONDARY)) == ("ServiceUnavailableException", "ok")
        dropped = device.wait_for_record(lambda r: r.get("message") == "DISCONNECTED", 10, "the disconnect")
        failover_notice = device.wait_for_record(
            lambda r: r.get("message") == f"REGION SWITCH detected: {PRIMARY}.iot-dr.test -> {SECONDARY}.iot-dr.test",
            20,
            "the failover",
        )
        failover_ready = device.wait_for_record(
            lambda r: r.get("message") == "SUBSCRIBED" and r["at"] > failover_notice["at"], 10, "the secondary"
        )
        time.sleep(0.5)

        restore = iot_dr("local", "restore", PRIMARY, "--state-dir", str(state_dir))
        restored_at = time.time()
        assert restore.returncode == 0, restore.stderr
        assert api_answer(endpoint, PRIMARY) == "ok"
        again = iot_dr("local", "restore", PRIMARY, "--state-dir", str(state_dir))
        assert (again.returncode, "already running" in again.stdout) == (0, True)
        failback_notice = device.wait_for_record(
            lambda r: r.get("message") == f"REGION SWITCH detected: {SECONDARY}.iot-dr.test -> {PRIMARY}.iot-dr.test",
            20,
            "the failback",
        )
        failback_ready = device.wait_for_record(
            lambda r: r.get("message") == "SUBSCRIBED" and r["at"] > failback_notice["at"], 10, "the primary again"
        )
        assert device.process.wait(MESSAGE_COUNT * MESSAGE_INTERVAL + 30) == 0
    finally:
        device.terminate()

    summary = next(r["summary"] for r in device.records() if r.get("message") == "summary")
    assert [r["role"] for r in device.records() if r.get("message") == "CONNECTED"] == [
        "primary",
        "secondary",
        "primary",
    ]
    assert summary["published"] == summary["acknowledged"] == MESSAGE_COUNT
    lost = set(summary["acknowledged_ids"]) - set(summary["received_ids"])
    assert not lost, f"acknowledged but never delivered: {sorted(lost)}"

    failover, failback = eventually(lambda: len(switches(local_up)) == 2 and switches(local_up))
    assert (failover["to"], failback["to"]) == (f"{SECONDARY}.iot-dr.test", f"{PRIMARY}.iot-dr.test")
    phases = [
        phase("failover", dropped["at"], failover, failover_notice, failover_ready),
        phase("failback", restored_at, failback, failback_notice, failback_ready),
    ]
    print(
        f"\nhealth checks every {REQUEST_INTERVAL} s, failure threshold {FAILURE_THRESHOLD}, CNAME TTL {RECORD_TTL} s "
        f"(the device re-resolves every TTL), reconnect jitter <= {RECONNECT_JITTER} s"
    )
    for measured in phases:
        print(measured.report())
        assert measured.total < 10

    restarted = StateFile(state_dir).read()
    assert restarted is not None
    restarted_broker = restarted.brokers[PRIMARY].process
    assert restarted_broker is not None and restarted_broker.alive()
    assert local_up.terminate() == 0
    assert not any(ref.alive() for ref in [*started, restarted_broker])
    assert not StateFile(state_dir).path.exists()
    assert state.runtime_dir and not Path(state.runtime_dir).exists()


def test_outage_and_restore_without_a_running_local_cloud_exit_1_and_say_so(state_dir: Path) -> None:
    for command in ("outage", "restore"):
        result = iot_dr("local", command, PRIMARY, "--state-dir", str(state_dir))
        assert result.returncode == 1
        assert "no local cloud is running" in result.stderr

    finished = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    server = ProcessRef.of(finished.pid)
    finished.kill()
    finished.wait()
    StateFile(state_dir).write(LocalState("http://127.0.0.1:1", PRIMARY, SECONDARY, server))

    result = iot_dr("local", "outage", PRIMARY, "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert f"pid {server.pid}" in result.stderr and "has exited" in result.stderr
