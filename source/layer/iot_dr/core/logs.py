"""Structured logging, configured once per process by the entry point (Lambda handler or CLI)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra keys passed with ``extra=`` become fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line: ``level``, ``logger``, ``message``, every ``extra=`` key, and ``exception``
        (the formatted traceback) when there is one. Values JSON cannot encode are written with ``str()``."""
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str | None = None) -> None:
    """Install the JSON handler on the root logger, once per process.

    Later calls change nothing, so warm Lambda containers don't duplicate the handler, and a process hosting
    several functions (the local cloud) keeps the level its entry point chose.
    """
    root = logging.getLogger()
    if any(getattr(h, "_iot_dr", False) for h in root.handlers):
        return
    root.setLevel((level or os.environ.get("LOG_LEVEL") or "INFO").upper())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._iot_dr = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
