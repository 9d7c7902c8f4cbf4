"""Waiting for asynchronous outcomes, as replication on AWS is asynchronous too."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns a truthy value, or fail with what it returned last."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last value: {value!r}")
        time.sleep(interval)
