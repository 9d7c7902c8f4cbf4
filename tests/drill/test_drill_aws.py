"""``iot-dr drill --aws`` driven through its real code path against the local cloud's endpoint (``AWS_ENDPOINT_URL``):
``iot-dr local up`` deploys the stacks with their Route 53 health checks, the test adds the failover records the
health-checker stacks create when given a hosted zone, and the drill finds all of it, makes the primary's health check
fail as the guide's failover test does, follows the record through the DNS server and restores everything, also when
interrupted (SIGINT) or killed (SIGKILL, then ``iot-dr drill --restore``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from iot_dr_local.drill.health_check_fault import MARKER, RECORD_FILE
from iot_dr_local.drill.run_record import RUN_FILE
from iot_dr_local.processes import find_binary
from iot_dr_local.run_state import LocalState, StateFile

PRIMARY, SECONDARY = "us-east-1", "us-west-2"
DRILL = [sys.executable, "-m", "iot_dr_cli.main", "drill"]
TEST_DEVICE_PREFIX = "iot-dr-drill-"

needs_daemons = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


def _drill(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """``iot-dr drill ARGUMENTS`` run to its end (at most 120 s) with its output captured."""
    return subprocess.run(
        [*DRILL, *arguments], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Cloud:
    """``iot-dr local up`` in a child process, and clients of its endpoint."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.out = state_dir / "local-up.out"
        argv = [
            sys.executable, "-m", "iot_dr_cli.main", "local", "up", "--port", "0", "--mqtt-port", "0",
            "--dns-port", "0", "--state-dir", str(state_dir), "--health-check-interval", "0.5",
            "--failure-threshold", "2", "--record-ttl", "1",
        ]  # fmt: skip
        with self.out.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _until(self._ready, 400, "local up to print READY")
        state = StateFile(state_dir).read()
        assert state is not None and state.dns is not None
        self.state: LocalState = state
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ENDPOINT_URL": state.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": PRIMARY,
        }

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"local up exited: {self.out.read_text()[-3000:]}")
        return "READY endpoint=" in self.out.read_text(errors="replace")

    def client(self, service: str, region: str = PRIMARY) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.state.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        state = StateFile(self.state_dir).read()
        for leftover in state.processes() if state else []:
            leftover.stop(signal.SIGKILL)


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    state_dir = Path(tempfile.mkdtemp(prefix="iot-dr-drill-aws-"))
    started = Cloud(state_dir)
    try:
        yield started
    finally:
        started.stop()


def _primary_health_check(cloud: Cloud) -> str:
    for stack in cloud.client("cloudformation").describe_stacks()["Stacks"]:
        for output in stack.get("Outputs", []):
            if output["OutputKey"] == "HealthCheckId":
                return str(output["OutputValue"])
    raise AssertionError("no health-checker stack in the primary")


def _add_failover_records(cloud: Cloud, health_check_id: str) -> str:
    """The PRIMARY/SECONDARY CNAME pair the health-checker stacks create in a hosted zone, for the record the local
    DNS server serves."""
    dns = cloud.state.dns
    assert dns is not None
    route53 = cloud.client("route53")
    zone = route53.create_hosted_zone(Name=dns.zone, CallerReference=str(time.time()))["HostedZone"]["Id"]
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": dns.record,
                "Type": "CNAME",
                "SetIdentifier": f"iot-dr-{region}",
                "Failover": role,
                "TTL": 1,
                "ResourceRecords": [{"Value": f"a1b2c3-ats.iot.{region}.amazonaws.com"}],
                **({"HealthCheckId": health_check_id} if role == "PRIMARY" else {}),
            },
        }
        for region, role in ((PRIMARY, "PRIMARY"), (SECONDARY, "SECONDARY"))
    ]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return dns.record


def _resource_path(cloud: Cloud, health_check_id: str) -> str:
    check = cloud.client("route53").get_health_check(HealthCheckId=health_check_id)
    return str(check["HealthCheck"]["HealthCheckConfig"]["ResourcePath"])


def _test_devices(cloud: Cloud, region: str) -> list[str]:
    things = cloud.client("iot", region).list_things(maxResults=250)["things"]
    return [t["thingName"] for t in things if t["thingName"].startswith(TEST_DEVICE_PREFIX)]


def _drill_argv(cloud: Cloud, report: Path) -> list[str]:
    """Three test devices, two of them with simulated devices that reach the local brokers through the local DNS
    server, trusting the local CA (AWS IoT's certificates are signed by a CA the brokers trust, as on AWS)."""
    dns = cloud.state.dns
    assert dns is not None and cloud.state.ca_path is not None
    mqtt_port = cloud.state.brokers[PRIMARY].port
    return [
        *DRILL, "--aws", "--primary-region", PRIMARY, "--secondary-region", SECONDARY, "--devices", "3",
        "--clients", "2", "--outage-seconds", "0", "--dns-server", f"{dns.address}:{dns.port}",
        "--mqtt-port", str(mqtt_port), "--root-ca", cloud.state.ca_path, "--switch-timeout", "90",
        "--report", str(report),
    ]  # fmt: skip


def _simulated_devices(report: Path) -> list[int]:
    """PIDs of the iot-dr-pubsub.py processes of the run recorded in ``report`` (their client IDs hold its run id)."""
    run_id = json.loads((report / RUN_FILE).read_text())["run_id"]
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "iot_dr_cli.pubsub" in command and run_id in command:
            found.append(int(proc.name))
    return found


def _drill_leftovers(cloud: Cloud, region: str) -> list[str]:
    """Test things, and policies and certificates of test devices, in ``region``."""
    iot = cloud.client("iot", region)
    policies = [
        policy["policyName"]
        for policy in iot.list_policies()["policies"]
        if policy["policyName"].startswith(TEST_DEVICE_PREFIX)
    ]
    drill_certificates = [
        c["certificateId"]
        for c in iot.list_certificates()["certificates"]
        if any(
            t["policyName"].startswith(TEST_DEVICE_PREFIX)
            for t in iot.list_attached_policies(target=c["certificateArn"])["policies"]
        )
    ]
    return _test_devices(cloud, region) + policies + drill_certificates


@needs_daemons
@pytest.mark.timeout(900)
def test_the_drill_against_a_deployment_fails_the_health_check_and_restores_it_even_when_interrupted(
    cloud: Cloud, tmp_path: Path
) -> None:
    # The local cloud's outage switch answers on its endpoint and refuses a malformed request.
    switch = f"{cloud.state.endpoint}/moto-api/iot-dr/outage"
    with urllib.request.urlopen(switch, timeout=10) as response:
        assert json.loads(response.read()) == {"down": []}
    bad = urllib.request.Request(switch, data=b'{"region": 1}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 400

    check_id = _primary_health_check(cloud)
    record = _add_failover_records(cloud, check_id)
    original = _resource_path(cloud, check_id)
    assert not original.endswith(MARKER)

    # A whole drill: the deployment is found, the record follows the health check both ways, nothing is left.
    report = tmp_path / "complete"
    finished = subprocess.run(
        _drill_argv(cloud, report), env=cloud.environment, capture_output=True, text=True, timeout=400, check=False
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    document = json.loads((report / "drill.json").read_text())
    assert (document["mode"], document["outcome"], document["passed"]) == ("aws", "completed", True)
    assert (document["target"]["health_check_id"], document["target"]["record_name"]) == (check_id, record)
    milestones = {m["name"]: m["at"] for m in document["milestones"]}
    failover, failback = document["switches"]
    assert (failover["phase"], failback["phase"]) == ("failover", "failback")
    assert (failover["to"].split(".")[0], failback["to"].split(".")[0]) == (SECONDARY, PRIMARY)
    assert milestones["outage"] == failover["trigger_at"] < failover["dns_updated_at"] < milestones["restore"]
    assert milestones["restore"] == failback["trigger_at"] < failback["dns_updated_at"]
    assert failover["seconds"] == pytest.approx(failover["dns_updated_at"] - failover["trigger_at"])
    # The verdict comes from GetHealthCheckStatus, answered from the emulation's probes: seen before the answer.
    for switch in (failover, failback):
        assert switch["trigger_at"] < switch["decided_at"] <= switch["dns_updated_at"]
        assert switch["detection_seconds"] == pytest.approx(switch["decided_at"] - switch["trigger_at"])
    assert (failover["from"], failback["from"]) == (failback["to"], failover["to"])
    samples = document["timeline"]["samples"]
    assert samples[0]["primary_healthy"] is True and samples[0]["dns_answer"] == failover["from"]
    assert document["replication"]["devices_replicated"] == 3 and document["parity_before_outage"]["in_parity"]
    assert document["replication"]["lag_metric"]["samples"] >= 3
    assert document["outage_changes"]["copied_to_primary"] == 0
    # Each simulated device's RTO is, in its own log, its first SUBSCRIBED in the other region minus the moment it
    # left the region it was in (it follows the CNAME: the primary's broker never went down).
    clients = sorted(path.stem for path in (report / "devices").glob("*.log"))
    assert len(clients) == 2 and all(name.startswith(TEST_DEVICE_PREFIX) for name in clients)
    for phase, trigger, role in (("failover", "outage", "secondary"), ("failback", "restore", "primary")):
        rto = document["rto"][phase]
        assert rto["not_switched"] == [] and sorted(d["device"] for d in rto["devices"]) == clients
        for device in rto["devices"]:
            log = (report / "devices" / f"{device['device']}.log").read_text().splitlines()
            lines = [line for line in map(json.loads, log) if line.get("at", 0) >= milestones[trigger]]
            left = next(line for line in lines if line["message"].startswith("REGION SWITCH detected"))
            connected = next(line for line in lines if line["message"] == "CONNECTED" and line["role"] == role)
            ready = next(line for line in lines if line["message"] == "SUBSCRIBED" and line["at"] >= connected["at"])
            assert (device["to_role"], device["disconnected_at"], device["ready_at"]) == (role, left["at"], ready["at"])
            assert device["rto"] == pytest.approx(ready["at"] - left["at"]) and device["rto"] > 0
    messages = document["messages"]
    assert messages["acknowledged"] > 0 and messages["lost"] == 0 and messages["devices_without_summary"] == []
    html = (report / "drill.html").read_text()
    assert "DR drill timeline" in html and "rto.failover.seconds" in html
    # No private key leaves the drill's runtime directory.
    assert not any("PRIVATE KEY" in path.read_text(errors="replace") for path in report.rglob("*") if path.is_file())
    assert document["cleanup"]["deleted"] == 3 and document["cleanup"]["certificates_deleted"] == 2
    assert _resource_path(cloud, check_id) == original
    assert not (report / RECORD_FILE).exists()
    assert _drill_leftovers(cloud, PRIMARY) == [] and _drill_leftovers(cloud, SECONDARY) == []
    assert "PASSED" in finished.stdout

    # SIGINT while failed over: the drill restores the health check and deletes its devices before it exits.
    report = tmp_path / "interrupted"
    drill = subprocess.Popen(
        _drill_argv(cloud, report), env=cloud.environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _until(lambda: _resource_path(cloud, check_id).endswith(MARKER), 300, "the health check to be made to fail")
    assert json.loads((report / RECORD_FILE).read_text())["health_check_id"] == check_id
    drill.send_signal(signal.SIGINT)
    _, errors = drill.communicate(timeout=200)
    assert drill.returncode == 128 + signal.SIGINT, errors
    assert "interrupted by SIGINT" in errors and "Traceback" not in errors
    assert _resource_path(cloud, check_id) == original
    assert not (report / RECORD_FILE).exists()
    assert _test_devices(cloud, PRIMARY) == [] and _test_devices(cloud, SECONDARY) == []
    assert _drill_leftovers(cloud, PRIMARY) == [] and _drill_leftovers(cloud, SECONDARY) == []
    assert json.loads((report / "drill.json").read_text())["outcome"] == "interrupted by SIGINT"

    # SIGKILL leaves the edit and the devices; the simulated devices end with the drill; the records on disk let
    # --restore undo the edit and delete the devices and the runtime directory with their keys.
    report = tmp_path / "killed"
    drill = subprocess.Popen(
        _drill_argv(cloud, report), env=cloud.environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _until(lambda: _resource_path(cloud, check_id).endswith(MARKER), 300, "the health check to be made to fail")
    drill.kill()
    drill.wait(30)
    runtime_dir = Path(json.loads((report / RUN_FILE).read_text())["runtime_dir"])
    assert any(runtime_dir.glob("*.key.pem"))
    _until(lambda: not _simulated_devices(report), 30, "the simulated devices to end with the drill")
    assert _resource_path(cloud, check_id) == original + MARKER
    assert _test_devices(cloud, PRIMARY)
    restored = _drill(cloud.environment, "--restore", "--report", str(report))
    assert restored.returncode == 0, restored.stderr
    assert f"health check {check_id}: restored" in restored.stdout
    assert _resource_path(cloud, check_id) == original
    assert not (report / RECORD_FILE).exists() and not (report / RUN_FILE).exists() and not runtime_dir.exists()
    assert _drill_leftovers(cloud, PRIMARY) == [] and _drill_leftovers(cloud, SECONDARY) == []
    again = _drill(cloud.environment, "--restore", "--report", str(report))
    assert (again.returncode, "nothing to restore" in again.stdout) == (0, True)

    # SIGKILL before the health check was touched: the run record alone lets --restore delete what was made.
    report = tmp_path / "killed-early"
    drill = subprocess.Popen(
        _drill_argv(cloud, report), env=cloud.environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _until(lambda: _test_devices(cloud, PRIMARY), 300, "the drill to create test devices")
    drill.kill()
    drill.wait(30)
    assert _resource_path(cloud, check_id) == original and not (report / RECORD_FILE).exists()
    restored = _drill(cloud.environment, "--restore", "--report", str(report))
    assert restored.returncode == 0 and "health check" not in restored.stdout, restored.stdout + restored.stderr
    assert not (report / RUN_FILE).exists()

    # What replication was still copying when --restore ran may reach the secondary after it; the replicated
    # deletions, newer, remove it again: the secondary ends empty and stays so.
    def settled_empty() -> bool:
        if _drill_leftovers(cloud, SECONDARY):
            return False
        time.sleep(5)  # and still so once what was in flight had time to arrive
        return not _drill_leftovers(cloud, SECONDARY)

    _until(settled_empty, 120, "replicated deletions in the secondary")
    assert _drill_leftovers(cloud, PRIMARY) == [] and _drill_leftovers(cloud, SECONDARY) == []


def test_an_unreachable_deployment_is_one_line_on_stderr_and_exit_1(tmp_path: Path) -> None:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        # Nothing listens on port 1 of the loopback address: every call is refused at once.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",
    }
    finished = _drill(environment, "--aws", "--devices", "2", "--report", str(tmp_path))
    assert finished.returncode == 1
    (line,) = finished.stderr.splitlines()
    assert line.startswith("iot-dr: error: EndpointConnectionError")
    assert json.loads((tmp_path / "drill.json").read_text())["outcome"].startswith("EndpointConnectionError")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--dns-server", "resolver.example:53"], "is not an IP address"),
        (["--switch-timeout", "soon"], "not a number"),
        (["--switch-timeout", "0"], "--switch-timeout must be between 1 and 86400"),
        (["--mqtt-port", "70000"], "--mqtt-port must be between 1 and 65535"),
        (["--mqtt-port", "tls"], "invalid int value"),
        (["--root-ca", "/nonexistent/AmazonRootCA1.pem"], "--root-ca /nonexistent/AmazonRootCA1.pem: not a readable"),
        (["--root-ca", "/"], "--root-ca /: not a readable file"),
    ],
)
def test_bad_options_of_the_drill_against_a_deployment_are_usage_errors(
    arguments: list[str], message: str, tmp_path: Path
) -> None:
    finished = subprocess.run(
        [*DRILL, "--aws", *arguments, "--report", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 2 and message in finished.stderr and "Traceback" not in finished.stderr
