"""Start and stop the local cloud's daemons (mosquitto, knot) as child processes tracked by PID.

The daemons never write PID files: a PID file in a directory the daemon cannot write after dropping privileges makes it
exit, and a stale one would point at an unrelated process. The PID of the child we started is the only one we signal.
Each daemon has a watchdog (``iot_dr_local.watchdog``) that stops it when its guardian, the process it serves, ends
in any way, so no daemon outlives ``iot-dr local up`` even after ``kill -9``. Its ports are checked before it starts:
a port another process holds fails at once, naming that process.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from iot_dr_local.ports import Port, PortInUse, require_free
from iot_dr_local.process_refs import ProcessGone, ProcessRef

LOG = logging.getLogger(__name__)


class DaemonError(RuntimeError):
    """A daemon is missing, failed to start, or did not become ready."""


def find_binary(name: str) -> str | None:
    """Path of ``name`` on PATH or in the sbin directories Debian installs daemons to."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=search)


def require_binary(name: str, package: str) -> str:
    path = find_binary(name)
    if path is None:
        raise DaemonError(f"{name} not found; install it with: apt-get install --no-install-recommends {package}")
    return path


class Daemon:
    """One child process: started with its output in ``log_path``, ready when ``is_ready()`` says so.

    ``argv`` and ``log_path`` are public so that the same process can be started again from a record of them.
    ``ports`` are the ones it binds (checked free before it starts); ``guardian`` is the process whose end ends the
    daemon (default: the process that starts it).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        is_ready: Callable[[], bool],
        ports: list[Port] | None = None,
        guardian: ProcessRef | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.ports = ports or []
        self.guardian = guardian
        self._is_ready = is_ready
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon and its watchdog and wait until it is ready.

        Raises DaemonError when a port is taken (naming the holder), the daemon exits, or it is not ready in time.
        """
        if self.running:
            return
        try:
            require_free(self.ports)
        except PortInUse as err:
            raise DaemonError(f"{self.name} cannot start: {err}") from err
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        # None when it exited at once; the readiness check below reports that with its log.
        self._watchdog = watch(self._process.pid, self.log_path, self.guardian)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise DaemonError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if self._is_ready():
                LOG.info("daemon started", extra={"daemon": self.name, "pid": self._process.pid})
                return
            time.sleep(0.02)
        self.stop()
        raise DaemonError(f"{self.name} did not become ready within {timeout} s:\n{self.log_tail()}")

    def stop(self, graceful: bool = True, timeout: float = 5.0) -> None:
        """SIGTERM (or SIGKILL to simulate a crash) the PID we started, then reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
        LOG.info("daemon stopped", extra={"daemon": self.name, "pid": process.pid, "graceful": graceful})
        self._process = None
        if self._watchdog is not None:
            # It exits as soon as it sees the daemon gone; reap it.
            try:
                self._watchdog.wait(timeout)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait(timeout)
            self._watchdog = None


def watch(pid: int, log_path: Path, guardian: ProcessRef | None = None) -> subprocess.Popen[bytes] | None:
    """Start ``iot_dr_local.watchdog`` to end process ``pid`` when ``guardian`` (default: this process) ends, however
    it ends; None when ``pid`` has already gone. The watchdog's output goes to ``log_path`` (an inherited pipe would
    keep the caller's reader waiting)."""
    guardian = guardian or ProcessRef.this_process()
    try:
        child = ProcessRef.of(pid)
    except ProcessGone:
        return None
    refs = (guardian.pid, guardian.start_time, child.pid, child.start_time)
    argv = [sys.executable, "-m", "iot_dr_local.watchdog", *(str(value) for value in refs)]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def make_readable_by(paths: list[Path], user: str | None) -> None:
    """Give ``user`` (a daemon that drops root privileges) read access to its files; private keys stay 0600."""
    if user is None or os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def check_traversable(directory: Path) -> None:
    """Fail early when a daemon running as another user could not reach ``directory``."""
    if os.geteuid() != 0:
        return
    for parent in [directory, *directory.resolve().parents]:
        if not parent.stat().st_mode & 0o001:
            raise DaemonError(
                f"{parent} is not searchable by other users; a daemon that drops root privileges cannot read "
                f"files below it. Use a directory such as one made by tempfile.mkdtemp() and chmod 0755."
            )
