"""Which devices a run has started and finished, so a stopped or crashed run continues where it left off.

``FileCheckpoint`` appends ``started <name>`` before a device and ``done <name>`` after it, flushing each line: a
run killed at any point leaves the devices in flight as started and not done. The next run skips the done ones and
copies the interrupted ones again in full (a half-copied device is already in the secondary, so smart mode's
"already there" test cannot be trusted for it); every write is idempotent, so nothing is duplicated.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

STARTED, DONE = "started", "done"


class Checkpoint(Protocol):
    """Where a sync run records its progress, so an interrupted run resumes where it stopped."""

    def load(self) -> tuple[set[str], set[str]]:
        """(finished, interrupted): devices finished by earlier runs, and those started but not finished."""

    def start(self, thing_name: str) -> None:
        """Record that ``thing_name`` is being synced."""

    def mark(self, thing_name: str) -> None:
        """Record ``thing_name`` as finished."""


class NoCheckpoint:
    """A checkpoint that remembers nothing (every run starts from scratch)."""

    def load(self) -> tuple[set[str], set[str]]:
        """No devices finished or interrupted."""
        return set(), set()

    def start(self, thing_name: str) -> None:
        """Record nothing."""
        return None

    def mark(self, thing_name: str) -> None:
        """Record nothing."""
        return None


class FileCheckpoint:
    """Lines ``started <name>`` and ``done <name>`` in ``path`` (created if absent)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def load(self) -> tuple[set[str], set[str]]:
        """(finished, interrupted) from the file; a missing file means a fresh run. OSError propagates."""
        if not self._path.exists():
            return set(), set()
        started: set[str] = set()
        finished: set[str] = set()
        # A line cut short by a crash has no newline: it is ignored.
        for line in self._path.read_text(encoding="utf-8").split("\n")[:-1]:
            state, _, name = line.partition(" ")
            (finished if state == DONE else started).add(name)
        return finished, started - finished

    def finished(self) -> set[str]:
        """Devices finished by earlier runs."""
        return self.load()[0]

    def _append(self, state: str, thing_name: str) -> None:
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write(f"{state} {thing_name}\n")
            out.flush()

    def start(self, thing_name: str) -> None:
        """Append ``started <thing_name>``; OSError propagates."""
        self._append(STARTED, thing_name)

    def mark(self, thing_name: str) -> None:
        """Append ``done <thing_name>``; OSError propagates."""
        self._append(DONE, thing_name)
