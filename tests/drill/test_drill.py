"""``iot-dr drill`` end to end on the local cloud (real brokers, DNS server and Route 53 emulation), its report's
figures checked against the simulated devices' own logs, and its answers to bad input and interruption."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from iot_dr_local.processes import find_binary

DRILL = [sys.executable, "-m", "iot_dr_cli.main", "drill"]
TOLERANCE = 1e-6

needs_failover_packages = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


def _log(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def _first(lines: list[dict[str, Any]], message: str, after: float, role: str | None = None) -> dict[str, Any]:
    return next(
        line
        for line in lines
        if line.get("message") == message and line["at"] >= after and (role is None or line.get("role") == role)
    )


@needs_failover_packages
@pytest.mark.timeout(600)
def test_a_small_drill_reports_what_its_devices_lived_through(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    finished = subprocess.run(
        [*DRILL, "--devices", "6", "--clients", "3", "--outage-seconds", "1", "--report", str(report_dir)],
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-4000:]
    document = json.loads((report_dir / "drill.json").read_text())
    milestones = {m["name"]: m["at"] for m in document["milestones"]}
    outage, restore = milestones["outage"], milestones["restore"]
    assert document["outcome"] == "completed"
    assert document["parity_before_outage"]["in_parity"]
    assert document["replication"]["devices_replicated"] == document["replication"]["devices_created"] == 6

    # Each device's RTO is its reconnect (subscribed in the other region) minus its disconnect (its connection dropped,
    # or it left to follow the CNAME), as its own log says.
    for phase, trigger, role in (("failover", outage, "secondary"), ("failback", restore, "primary")):
        figures = document["rto"][phase]
        assert figures["not_switched"] == []
        assert len(figures["devices"]) == 3
        for device in figures["devices"]:
            lines = _log(report_dir / "devices" / f"{device['device']}.log")
            disconnected = next(
                line
                for line in lines
                if line.get("at", 0) >= trigger
                and (line.get("message") == "DISCONNECTED" or line.get("message", "").startswith("REGION SWITCH"))
            )
            connected = _first(lines, "CONNECTED", disconnected["at"], role)
            ready = _first(lines, "SUBSCRIBED", connected["at"])
            assert device["disconnected_at"] == pytest.approx(disconnected["at"], abs=TOLERANCE)
            assert device["ready_at"] == pytest.approx(ready["at"], abs=TOLERANCE)
            assert device["rto"] == pytest.approx(ready["at"] - disconnected["at"], abs=TOLERANCE)
            assert device["to_role"] == role
        rtos = sorted(device["rto"] for device in figures["devices"])
        assert figures["seconds"]["max"] == pytest.approx(rtos[-1])
        assert figures["seconds"]["p50"] == pytest.approx(rtos[1])

    # The DNS switches happened after their trigger, and the devices reconnected after the switch.
    failover, failback = document["switches"]
    assert (failover["phase"], failback["phase"]) == ("failover", "failback")
    assert outage < failover["decided_at"] <= failover["dns_updated_at"] < restore
    assert failover["detection_seconds"] == pytest.approx(failover["decided_at"] - outage)
    assert restore < failback["decided_at"] <= failback["dns_updated_at"]
    assert all(d["ready_at"] > failover["dns_updated_at"] for d in document["rto"]["failover"]["devices"])
    samples = document["timeline"]["samples"]
    failed_over = [s for s in samples if failover["dns_updated_at"] < s["at"] < restore]
    assert failed_over and all(s["dns_answer"] == failover["to"] for s in failed_over)

    # The outage took the primary's API down with its broker: the RPO is what the secondary lacked then, and what
    # it still lacks once failed over could only have come from the primary.
    rpo = document["rpo"]
    assert rpo["primary_api"] == "ServiceUnavailableException"
    assert 0 <= rpo["lost"] <= rpo["unreplicated"] <= rpo["changes_made"]
    assert (rpo["oldest_unreplicated_age_seconds"] is None) == (rpo["unreplicated"] == 0)
    # The secondary's workers reported a lag for every event they handled, read back from (local) CloudWatch.
    metric = document["replication"]["lag_metric"]
    assert metric["metric"] == "IoTDR/ReplicationLag" and metric["samples"] >= 6
    assert 0 < metric["average_ms"] <= metric["max_ms"] < 600_000

    # Messages: the totals are the devices' own summaries; none acknowledged was lost.
    summaries = [
        next(line["summary"] for line in reversed(_log(path)) if line.get("message") == "summary")
        for path in sorted((report_dir / "devices").glob("*.log"))
    ]
    messages = document["messages"]
    assert messages["published"] == sum(s["published"] for s in summaries)
    assert messages["acknowledged"] == sum(s["acknowledged"] for s in summaries) > 0
    assert messages["lost"] == 0

    # Changes made in the secondary during the outage never reach the primary (replication is one-way); each stays in
    # the secondary unless a primary change from before the outage, still in the backlog then, replicated over it.
    changes = document["outage_changes"]
    assert changes["made"] >= 1 and changes["copied_to_primary"] == 0
    assert changes["kept_in_secondary"] + changes["overwritten_by_replication"] == changes["made"]
    assert changes["overwritten_by_replication"] <= document["rpo"]["unreplicated"]

    page = (report_dir / "drill.html").read_text()
    assert "<script" in page and "https://cdn" not in page.split("plotly.js")[0]
    assert "DR drill timeline" in page
    assert "PASSED" in finished.stdout and "RTO failover" in finished.stdout


@pytest.mark.parametrize("devices", ["0", "10001", "-3"])
def test_a_fleet_size_out_of_range_is_a_usage_error(devices: str, tmp_path: Path) -> None:
    finished = subprocess.run(
        [*DRILL, "--devices", devices, "--report", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 2
    assert finished.stderr.strip().count("\n") == 0 and "--devices must be between 1 and 10000" in finished.stderr


def test_a_report_directory_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    finished = subprocess.run(
        [*DRILL, "--devices", "2", "--report", str(blocker / "report")], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 2
    assert "cannot write the report to" in finished.stderr and "Traceback" not in finished.stderr


@needs_failover_packages
@pytest.mark.timeout(300)
def test_an_interrupted_drill_stops_everything_and_writes_the_partial_report(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    drill = subprocess.Popen(
        [*DRILL, "--devices", "3", "--clients", "2", "--report", str(report_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert drill.stdout is not None
    children: list[psutil.Process] = []
    for line in drill.stdout:
        if line.startswith("replication settled"):
            break
    # Clients connect right after replication settles; let the daemons and clients be running when interrupted.
    time.sleep(1.0)
    children = psutil.Process(drill.pid).children(recursive=True)
    assert children, "the drill started no child process"
    drill.send_signal(signal.SIGINT)
    rest, errors = drill.communicate(timeout=60)
    assert drill.returncode == 128 + signal.SIGINT, errors
    assert "interrupted by SIGINT" in errors
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    document = json.loads((report_dir / "drill.json").read_text())
    assert document["outcome"] == "interrupted by SIGINT"
    assert document["parity_before_outage"]["in_parity"]
    assert "FAILED" in rest


# Runs the drill on a machine without knot: the failover module finds no knotd binary, as on a fresh machine.
WITHOUT_KNOT = (
    "import sys; import iot_dr_local.failover as failover; real = failover.find_binary; "
    "failover.find_binary = lambda name: None if name == 'knotd' else real(name); "
    "from iot_dr_cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def test_a_missing_dns_server_names_the_package_to_install(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", WITHOUT_KNOT, "drill", "--devices", "2", "--report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 3
    (line,) = finished.stderr.splitlines()
    assert line == "iot-dr: error: the drill needs knot: apt-get install --no-install-recommends knot"
