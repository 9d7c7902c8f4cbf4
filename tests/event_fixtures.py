"""Documented AWS event examples under ``tests/events`` (see ``tests/events/README.md`` for sources)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent / "events"


def load_event(relative_path: str) -> dict[str, Any]:
    """The JSON fixture at ``tests/events/<relative_path>``."""
    with (EVENTS_DIR / relative_path).open(encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document
