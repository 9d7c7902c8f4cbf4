"""Processes named by PID *and* start time, so a command run later never signals a recycled PID.

``iot-dr local up`` records the PIDs of the daemons it starts; ``iot-dr local outage``/``restore`` run as other
processes and act on those records. A PID alone may by then belong to an unrelated process, so each reference also
carries the process's start time from ``/proc/<pid>/stat``, and a process that exited but was not yet reaped by its
parent (a zombie) counts as gone.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger(__name__)

_STAT_STATE = 0  # fields after the ")" that closes the command name: state is field 3 of proc(5)
_STAT_START_TIME = 19  # field 22: start time in clock ticks after boot


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses; everything after the last ")" is space-separated.
    return text[text.rindex(")") + 2 :].split()


class ProcessGone(RuntimeError):
    """The referenced process no longer exists (or its PID now belongs to another process)."""


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        fields = _stat_fields(pid)
        if fields is None:
            raise ProcessGone(f"no process with PID {pid}")
        return cls(pid, int(fields[_STAT_START_TIME]))

    @classmethod
    def this_process(cls) -> ProcessRef:
        return cls.of(os.getpid())

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        if fields is None:
            return False
        return int(fields[_STAT_START_TIME]) == self.start_time and fields[_STAT_STATE] != "Z"

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 5.0) -> bool:
        """Send ``sig`` and wait until the process is gone, escalating to SIGKILL after ``timeout``.

        Returns False when the process had already gone.
        """
        if not self.alive():
            return False
        self._signal(sig)
        if not self._wait_gone(timeout) and sig != signal.SIGKILL:
            LOG.warning("process ignored the signal; killing it", extra={"pid": self.pid, "signal": sig.name})
            self._signal(signal.SIGKILL)
            self._wait_gone(timeout)
        if self.alive():
            raise RuntimeError(f"process {self.pid} is still running after SIGKILL")
        return True

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True
