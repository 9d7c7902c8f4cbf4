"""One lock around moto request handling, because moto's backends are not thread-safe.

Requests arrive from test code, tools, Lambda handlers, Step Functions threads and the local cloud's own
workers at once. Every moto dispatch holds the lock; a Lambda handler gives it up while it runs, so the
AWS calls it makes (from the same or another thread) can proceed.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.responses import BaseResponse


class ServiceLock:
    """A re-entrant lock, granted in arrival order, that a thread can give up completely for a while (``released``).

    Arrival order matters under load: with a plain lock, the threads that just released it (test and tool clients
    calling in a loop) win it again and again, and the stream pollers and workflows that carry replication forward
    wait for seconds. Here a releasing owner hands the lock to the longest waiter.
    """

    _HANDING_OVER = -1

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def _acquire(self, depth: int = 1) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += depth
                return
            if self._owner is None:
                self._owner, self._depth = me, depth
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        gate.acquire()  # opened by the owner that hands the lock over to us
        with self._mutex:
            self._owner, self._depth = me, depth

    def _release(self, depth: int = 1) -> None:
        with self._mutex:
            if self._owner != threading.get_ident() or self._depth < depth:
                raise RuntimeError("the service lock is not held by this thread")
            self._depth -= depth
            if self._depth:
                return
            if self._waiters:
                self._owner = self._HANDING_OVER
                self._waiters.popleft().release()
            else:
                self._owner = None

    def _held_depth(self) -> int:
        with self._mutex:
            return self._depth if self._owner == threading.get_ident() else 0

    @contextmanager
    def held(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def released(self) -> Iterator[None]:
        depth = self._held_depth()
        if depth:
            self._release(depth)
        try:
            yield
        finally:
            if depth:
                self._acquire(depth)


SERVICE_LOCK = ServiceLock()
_original_dispatch: Callable[..., Any] | None = None


def install() -> None:
    """Serialise every moto dispatch through ``SERVICE_LOCK`` (idempotent)."""
    global _original_dispatch
    if _original_dispatch is not None:
        return
    original = BaseResponse.dispatch.__func__  # type: ignore[attr-defined]
    _original_dispatch = original

    def dispatch(cls: type[BaseResponse], *args: Any, **kwargs: Any) -> Any:
        with SERVICE_LOCK.held():
            return original(cls, *args, **kwargs)

    BaseResponse.dispatch = classmethod(dispatch)  # type: ignore[method-assign,assignment]
