"""What the drill observes while it runs: timestamped milestones, samples of the failover state, replication of the
fleet as seen from the secondary, and shadow changes with the moment each was made."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Milestone:
    at: float
    name: str
    detail: str = ""


@dataclass
class Sample:
    """The failover state at ``at``: each region's health-check status (None: not known, as for a region without a
    health check) and the failover CNAME's answer."""

    at: float
    primary_healthy: bool | None
    secondary_healthy: bool | None
    dns_answer: str
    backlog: int


@dataclass
class ShadowChange:
    """A shadow update the drill made in ``region`` at ``at``: ``desired.drill_seq`` = ``seq``."""

    thing: str
    region: str
    seq: int
    at: float


@dataclass
class Observations:
    """Everything the report is computed from; appended to by the drill's threads (list appends are atomic)."""

    milestones: list[Milestone] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    created_at: dict[str, float] = field(default_factory=dict)
    replicated_at: dict[str, float] = field(default_factory=dict)
    shadow_changes: list[ShadowChange] = field(default_factory=list)

    def mark(self, name: str, detail: str = "") -> float:
        at = time.time()
        self.milestones.append(Milestone(at, name, detail))
        return at

    def milestone(self, name: str) -> Milestone | None:
        return next((m for m in self.milestones if m.name == name), None)

    def backlog(self) -> int:
        """Devices created in the primary and not yet seen in the secondary."""
        return len(self.created_at.keys() - self.replicated_at.keys())


class Repeating:
    """Calls ``step`` every ``interval`` seconds in a daemon thread until ``stop``; an error ends the loop and is
    kept in ``error`` for the drill to report."""

    def __init__(self, name: str, step: Callable[[], Any], interval: float) -> None:
        self._step, self._interval = step, interval
        self._stopped = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self._step()
            except Exception as err:  # reported by the drill, not swallowed
                self.error = err
                return
            self._stopped.wait(self._interval)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(30)
