"""Ends a daemon when the process it serves ends, however that process ends (``kill -9`` included).

``python -m iot_dr_local.watchdog GUARDIAN_PID GUARDIAN_START DAEMON_PID DAEMON_START`` waits on pidfds (Linux 5.3+)
for either process to end: when the daemon ends first it just exits; when the guardian ends first it stops the daemon
(SIGTERM, then SIGKILL after ``GRACE_SECONDS``). Start times (from ``/proc/<pid>/stat``) make sure a recycled PID is
never waited on or signalled. It runs in a session of its own, so a Ctrl-C in the guardian's terminal does not reach
it, and it imports nothing beyond the standard library and ``process_refs`` to start in milliseconds.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from iot_dr_local.process_refs import ProcessRef

GRACE_SECONDS = 2.0


def _pidfd(ref: ProcessRef) -> int | None:
    """A pidfd for ``ref``, or None when it has already gone (checked after opening, against PID reuse)."""
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        return None
    if not ref.alive():
        os.close(fd)
        return None
    return fd


def _ended(fd: int, timeout: float | None) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def _stop(fd: int) -> None:
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return
        if _ended(fd, wait):
            return


def watch(guardian: ProcessRef, daemon: ProcessRef) -> None:
    daemon_fd = _pidfd(daemon)
    if daemon_fd is None:
        return
    guardian_fd = _pidfd(guardian)
    if guardian_fd is not None:
        ready, _, _ = select.select([guardian_fd, daemon_fd], [], [])
        if daemon_fd in ready:
            return
    _stop(daemon_fd)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guardian_pid, guardian_start, daemon_pid, daemon_start = (int(arg) for arg in argv)
    watch(ProcessRef(guardian_pid, guardian_start), ProcessRef(daemon_pid, daemon_start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
