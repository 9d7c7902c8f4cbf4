"""``iot-dr local up``'s lifetime: a taken port fails at once naming its holder; SIGTERM and Ctrl-C end it within 5 s
in every phase with no child process left; after ``kill -9`` its brokers and DNS server end too.

Each test runs ``local up`` as a subprocess on ports picked free (0) or held by the test, with bounded waits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from failover_support import free_dns_port, free_port
from waiting import eventually

from iot_dr_local.mqtt_broker import PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS
from iot_dr_local.ports import TCP, UDP, Port, require_free
from iot_dr_local.processes import find_binary
from iot_dr_local.run_state import LocalState, StateFile

STOP_WITHIN = 5.0

needs_daemons = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


class LocalUp:
    """``iot-dr local up`` with its output in files the test reads while it runs."""

    def __init__(self, state_dir: Path, *options: str) -> None:
        self.state_dir = state_dir
        self.stdout_path, self.stderr_path = state_dir / "up.out", state_dir / "up.err"
        argv = [sys.executable, "-m", "iot_dr_cli.main", "local", "up", "--state-dir", str(state_dir), *options]
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"never saw {what}; exit code {self.process.poll()}; stderr:\n{self.stderr()[-3000:]}")

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop_with(self, sig: signal.Signals) -> tuple[int, float, list[psutil.Process]]:
        """Send ``sig``; the exit code, the seconds it took to exit, and the child processes it had then."""
        children = self.children()
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(STOP_WITHIN + 5)
        except subprocess.TimeoutExpired:
            code = -1
        return code, time.monotonic() - started, children


@pytest.fixture
def state_dir(work_dir: Path) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="lifetime-", dir=work_dir))
    yield directory
    state = StateFile(directory).read()
    for leftover in state.processes() if state else []:
        leftover.stop(signal.SIGKILL)


@pytest.fixture
def started() -> Iterator[list[LocalUp]]:
    """Every ``local up`` a test starts is killed with its children at teardown, whatever happened."""
    processes: list[LocalUp] = []
    yield processes
    for up in processes:
        for process in [*up.children(), psutil.Process(up.process.pid)] if up.process.poll() is None else []:
            try:
                process.kill()
            except psutil.Error:
                continue


def assert_gone(processes: list[psutil.Process], timeout: float = 2.0) -> None:
    """Each process has exited (a PID reused since then does not count: psutil checks the creation time)."""
    deadline = time.monotonic() + timeout
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [process for process in alive if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    assert not alive, [(process.pid, process.cmdline()) for process in alive]


def one_line_error(up: LocalUp) -> str:
    lines = up.stderr().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("role", ["api", "broker", "dns-udp"])
def test_a_taken_port_fails_at_once_naming_the_process_that_holds_it(
    role: str, state_dir: Path, started: list[LocalUp]
) -> None:
    if role == "dns-udp":
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = free_dns_port("127.0.0.1")
        holder.bind(("127.0.0.1", port))
    else:
        address = "127.0.0.1" if role == "api" else SECONDARY_BROKER_ADDRESS
        port = free_port("127.0.0.1", PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS)
        holder = socket.socket()
        holder.bind((address, port))
        holder.listen()
    option = {"api": "--port", "broker": "--mqtt-port", "dns-udp": "--dns-port"}[role]
    ports = {"--port": "0", "--mqtt-port": "0", "--dns-port": "0", option: str(port)}
    with holder:
        up = LocalUp(state_dir, *(item for pair in ports.items() for item in pair))
        started.append(up)
        code = up.process.wait(20)
    assert code == 1
    line = one_line_error(up)
    assert line.startswith("iot-dr: error: port ") and f":{port}/" in line, line
    assert f"(pid {os.getpid()})" in line, line
    assert not StateFile(state_dir).path.exists()


def test_sigterm_during_start_up_ends_local_up_within_5_s(state_dir: Path, started: list[LocalUp]) -> None:
    up = LocalUp(state_dir, "--port", "0", "--no-failover")
    started.append(up)
    # The state file's placeholder is written before moto is imported and the server starts.
    up.wait_until(StateFile(state_dir).path.exists, 30, "the state file")
    code, seconds, children = up.stop_with(signal.SIGTERM)
    assert (code, seconds < STOP_WITHIN) == (128 + signal.SIGTERM, True), (code, seconds, up.stderr()[-2000:])
    assert_gone(children)
    assert not StateFile(state_dir).path.exists()


# ``LocalCloud.deploy`` replaced by one that gets SIGTERM inside a library callback which reports the exception raised
# there as an error of its own, as awscrt does (AWS_ERROR_UNKNOWN) while botocore signs or sends a request.
_STOP_INSIDE_A_CALLBACK = """
import signal, sys
from iot_dr_local.cloud import LocalCloud
from iot_dr_cli.main import main

def deploy(self, **kwargs):
    try:
        signal.raise_signal(signal.SIGTERM)
        sum(range(100_000))
    except BaseException:
        raise RuntimeError("AWS_ERROR_UNKNOWN: Unknown error.") from None

LocalCloud.deploy = deploy
sys.exit(main(["local", "up", "--state-dir", sys.argv[1], "--port", "0", "--no-failover"]))
"""


def test_sigterm_turned_into_a_library_error_still_ends_local_up_with_the_signal_code(state_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _STOP_INSIDE_A_CALLBACK, str(state_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not StateFile(state_dir).path.exists()


@needs_daemons
def test_sigterm_during_deployment_ends_local_up_within_5_s_leaving_no_child(
    state_dir: Path, started: list[LocalUp]
) -> None:
    up = LocalUp(state_dir, "--port", "0", "--mqtt-port", "0", "--dns-port", "0")
    started.append(up)
    up.wait_until(lambda: "creating stack" in up.stderr(), 120, "the deployment")
    code, seconds, children = up.stop_with(signal.SIGTERM)
    assert (code, seconds < STOP_WITHIN) == (128 + signal.SIGTERM, True), (code, seconds, up.stderr()[-2000:])
    assert_gone(children)


def _ready_with_daemons(state_dir: Path, started: list[LocalUp], *options: str) -> tuple[LocalUp, LocalState]:
    """``local up`` with its failover daemons (two brokers, the DNS server) on free ports, once READY, and the state it
    wrote."""
    up = LocalUp(state_dir, "--port", "0", "--mqtt-port", "0", "--dns-port", "0", *options)
    started.append(up)
    up.wait_until(lambda: "READY " in up.stdout(), 180, "READY")
    state = StateFile(state_dir).read()
    assert state is not None and len(state.processes()) == 3
    return up, state


@needs_daemons
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_after_ready_ends_local_up_and_its_daemons_quietly_within_5_s(
    state_dir: Path, started: list[LocalUp], signum: signal.Signals
) -> None:
    # Probes every 0.1 s: some are in flight while the checkers' processes are being ended.
    up, state = _ready_with_daemons(state_dir, started, "--health-check-interval", "0.1")
    before_stop = len(up.stderr())
    code, seconds, children = up.stop_with(signum)
    assert (code, seconds < STOP_WITHIN) == (0, True), (code, seconds, up.stderr()[-2000:])
    # Shutting down is not an error: no traceback, no failed probe or DNS update reported while stopping.
    stopping = up.stderr()[before_stop:]
    assert "Traceback" not in stopping and "ERROR" not in stopping and "failed" not in stopping, stopping
    assert_gone(children)
    assert not any(process.alive() for process in state.processes())


@needs_daemons
def test_brokers_and_dns_server_end_when_local_up_is_killed(state_dir: Path, started: list[LocalUp]) -> None:
    up, state = _ready_with_daemons(state_dir, started)
    daemons = state.processes()
    assert all(daemon.alive() for daemon in daemons)
    up.process.kill()
    up.process.wait(10)
    eventually(lambda: not any(daemon.alive() for daemon in daemons), timeout=5)
    # What an earlier version left behind made the next start fail: every port the daemons held is free again.
    assert state.dns is not None
    held = [Port(broker.address, broker.port) for broker in state.brokers.values()]
    held += [Port(state.dns.address, state.dns.port, protocol) for protocol in (TCP, UDP)]
    require_free(held)
