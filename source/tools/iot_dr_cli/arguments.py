"""Argument types shared by the operator tools and the ``iot-dr`` subcommands (bad values are usage errors, exit 2,
one line naming the argument, before any AWS call), and options dataclasses built from the parsed arguments."""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")


def region(value: str) -> str:
    """An AWS region code; checked before any call so a typo is a usage error, not minutes of retries."""
    if not _REGION.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an AWS region code such as us-east-1")
    return value


def whole_number(value: str, low: int, high: int | None = None) -> int:
    """``value`` as an int from ``low`` to ``high`` (no upper bound when None); raises ``ArgumentTypeError``."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if high is None and number < low:
        raise argparse.ArgumentTypeError(f"{number} must be at least {low}")
    if high is not None and not low <= number <= high:
        raise argparse.ArgumentTypeError(f"{number} is outside {low}-{high}")
    return number


def number(value: str) -> float:
    """Any decimal number (the caller checks its range, so that every bad value gets one message)."""
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


def port(value: str) -> int:
    """A TCP port number, 0 meaning any free port."""
    return whole_number(value, 0, 65535)


def positive(value: str) -> int:
    """A whole number of at least 1."""
    return whole_number(value, 1)


def max_workers(value: str) -> int:
    """Parallel comparisons (``--max-workers``): 1 to ``iot_dr.fleet.drift.MAX_WORKERS``."""
    # Imported here: every tool imports this module, and only the comparisons need the fleet code (and boto3).
    from iot_dr.fleet.drift import MAX_WORKERS

    return whole_number(value, 1, MAX_WORKERS)


def non_negative_seconds(value: str) -> float:
    """A duration in seconds, 0 or more (finite)."""
    seconds = number(value)
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more seconds")
    return seconds


def output_file(value: str) -> Path:
    """A file the tool writes when done: its folder must exist and be writable now, so a typo is a usage error
    before the work rather than a lost result after it."""
    path = Path(value)
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder, not a file")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{value} is not writable")
    return path


def from_arguments(options: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass ``options`` from parsed arguments: each field from ``overrides`` or else from the argument of the
    same name (``--dns-interval`` fills ``dns_interval``); a field with neither keeps its default."""
    named = {f.name: getattr(args, f.name) for f in fields(options) if f.init and hasattr(args, f.name)}
    return options(**{**named, **overrides})
