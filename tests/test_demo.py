"""The README's first quick-start command: the local replication demo ends in parity."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(300)
def test_demo_replicates_a_fleet_and_prints_the_parity_table() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "iot_dr_cli.main", "demo", "--things", "4"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    lines = finished.stdout.splitlines()
    assert any(line.startswith("  us-west-2: 4/4 devices, 4/4 with their certificate") for line in lines)
    # The parity table is iot-devices-cmp.py's: each device compared whole (thing, type, groups, certificates,
    # policies, shadows), then its counts line.
    header = lines.index(next(line for line in lines if line.split()[:2] == ["thing", "status"]))
    rows = {line.split()[0]: line.split(None, 1)[1].strip() for line in lines[header + 1 : header + 5]}
    assert rows == {f"dr-demo-{i:04d}": "in sync" for i in range(4)}
    assert lines[header + 5] == "NUM_THINGS_COMPARED: 4 NUM_THINGS_IN_SYNC: 4 NUM_THINGS_NOTSYNCED: 0 NUM_ERRORS: 0"
    assert "the secondary region is in parity with the primary" in finished.stdout


def test_demo_rejects_an_empty_fleet() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "iot_dr_cli.main", "demo", "--things", "0"], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 2
    assert "--things" in finished.stderr and "0 must be between 1 and 10000" in finished.stderr
