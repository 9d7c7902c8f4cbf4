"""Daemons end with their guardian however it ends, and refuse to start on a port another process holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import eventually

from iot_dr_local.ports import Port
from iot_dr_local.process_refs import ProcessRef
from iot_dr_local.processes import Daemon, DaemonError

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def spawn(processes: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    processes.append(process)
    eventually(lambda: Path(f"/proc/{process.pid}/stat").exists(), timeout=5)
    return process


def watchdog(
    processes: list[subprocess.Popen[bytes]], guardian: ProcessRef, daemon: ProcessRef
) -> subprocess.Popen[bytes]:
    refs = (guardian.pid, guardian.start_time, daemon.pid, daemon.start_time)
    return spawn(processes, [sys.executable, "-m", "iot_dr_local.watchdog", *map(str, refs)])


def test_the_daemon_is_stopped_when_its_guardian_is_killed(processes: list[subprocess.Popen[bytes]]) -> None:
    guardian = spawn(processes, SLEEPER)
    daemon = spawn(processes, SLEEPER)
    dog = watchdog(processes, ProcessRef.of(guardian.pid), ProcessRef.of(daemon.pid))
    time.sleep(0.3)  # the watchdog is waiting on both
    assert daemon.poll() is None
    guardian.kill()
    guardian.wait(5)
    assert daemon.wait(5) != 0  # SIGTERM from the watchdog
    assert dog.wait(5) == 0


def test_the_watchdog_leaves_when_the_daemon_ends_first(processes: list[subprocess.Popen[bytes]]) -> None:
    guardian = spawn(processes, SLEEPER)
    daemon = spawn(processes, SLEEPER)
    dog = watchdog(processes, ProcessRef.of(guardian.pid), ProcessRef.of(daemon.pid))
    daemon.kill()
    daemon.wait(5)
    assert dog.wait(5) == 0
    assert guardian.poll() is None


def test_a_daemon_started_here_ends_when_this_process_is_killed(tmp_path: Path) -> None:
    # A child Python process plays local up: it starts a Daemon, prints its PID, and is killed with SIGKILL.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from iot_dr_local.processes import Daemon\n"
        f"daemon = Daemon('sleeper', {SLEEPER!r}, Path(sys.argv[1]), lambda: True)\n"
        "daemon.start()\n"
        "print(daemon.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "sleeper.log")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        daemon = ProcessRef.of(int(parent.stdout.readline()))
        assert daemon.alive()
        parent.kill()
        parent.wait(5)
        eventually(lambda: not daemon.alive(), timeout=5)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_daemon_whose_port_is_taken_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        daemon = Daemon("sleeper", SLEEPER, tmp_path / "sleeper.log", lambda: True, [Port("127.0.0.1", port)])
        with pytest.raises(DaemonError) as raised:
            daemon.start()
    this = Path("/proc/self/comm").read_text().strip()
    assert (
        str(raised.value) == f"sleeper cannot start: port 127.0.0.1:{port}/tcp is in use by {this} (pid {os.getpid()})"
    )
    assert not daemon.running
