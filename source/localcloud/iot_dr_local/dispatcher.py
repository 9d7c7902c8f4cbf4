"""Background work of the local cloud (message delivery, stream polling, replication) and idle detection.

AWS delivers events asynchronously; so does the local cloud. Tests and tools wait for quiet with
``Dispatcher.wait_idle`` instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

LOG = logging.getLogger(__name__)


class Dispatcher:
    """A thread pool that counts its outstanding tasks, plus busy probes of other components."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="localcloud")
        self._pending = 0
        self._lock = threading.Lock()
        self._probes: list[Callable[[], bool]] = []

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._pending += 1
        future = self._pool.submit(self._run, fn, *args, **kwargs)
        return future

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            LOG.exception("local cloud task failed", extra={"task": getattr(fn, "__qualname__", str(fn))})
            raise
        finally:
            with self._lock:
                self._pending -= 1

    def add_busy_probe(self, probe: Callable[[], bool]) -> None:
        """Register a callable that returns True while its component still has work in flight."""
        self._probes.append(probe)

    def busy(self) -> bool:
        with self._lock:
            if self._pending:
                return True
        return any(probe() for probe in self._probes)

    def wait_idle(self, timeout: float = 60.0, settle: float = 0.3) -> bool:
        """Wait until nothing is pending for ``settle`` seconds in a row; False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.busy():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return True
            time.sleep(0.05)
        return False

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
