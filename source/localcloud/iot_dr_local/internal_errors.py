"""Errors of the local cloud itself (not of the code it runs): logged once with their cause, and counted.

AWS never shows its own faults to a function or a rule as silence; the emulator should not either. A component
that catches an unexpected exception of its own reports it here, then carries on with the next record or
message, so one bug blocks nothing else. Tests read ``counts()`` to prove an emulator path stayed clean.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

LOG = logging.getLogger(__name__)

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_logged: set[tuple[str, str, str]] = set()


def report(component: str, err: BaseException) -> None:
    """Count an internal error of ``component``; log it with its traceback the first time this cause is seen."""
    cause = (component, type(err).__name__, str(err))
    with _lock:
        _counts[component] += 1
        first = cause not in _logged
        _logged.add(cause)
    if first:
        LOG.error("local cloud internal error in %s: %s", component, err, exc_info=err)


def counts() -> dict[str, int]:
    """Internal errors per component since the last ``reset``."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    with _lock:
        _counts.clear()
        _logged.clear()
