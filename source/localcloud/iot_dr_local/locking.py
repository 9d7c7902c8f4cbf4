"""One lock around moto request handling, because moto's backends are not thread-safe.

Requests arrive from test code, tools, Lambda handlers, Step Functions threads and the local cloud's own
workers at once. Every moto dispatch holds the lock; a Lambda handler gives it up while it runs, so the
AWS calls it makes (from the same or another thread) can proceed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.responses import BaseResponse


class ServiceLock:
    """A re-entrant lock that a thread can give up completely for a while (see ``released``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = threading.local()

    def _get_depth(self) -> int:
        return getattr(self._depth, "value", 0)

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self._depth.value = self._get_depth() + 1
            try:
                yield
            finally:
                self._depth.value -= 1

    @contextmanager
    def released(self) -> Iterator[None]:
        depth = self._get_depth()
        for _ in range(depth):
            self._lock.release()
        self._depth.value = 0
        try:
            yield
        finally:
            for _ in range(depth):
                self._lock.acquire()
            self._depth.value = depth


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
