"""A background thread that calls one function at a fixed interval until stopped (pollers, schedules)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls ``tick`` every ``interval()`` seconds; the interval is read each time, so owners may change it."""

    def __init__(self, name: str, interval: Callable[[], float], tick: Callable[[], None]) -> None:
        self._name = name
        self._interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval()):
            self._tick()
