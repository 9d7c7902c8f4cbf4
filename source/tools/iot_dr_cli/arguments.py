"""Argument types shared by the ``iot-dr`` subcommands: bad values are usage errors (exit 2) before any AWS call."""

from __future__ import annotations

import argparse
import re

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")


def region(value: str) -> str:
    """An AWS region code; checked before any call so a typo is a usage error, not minutes of retries."""
    if not _REGION.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an AWS region code such as us-east-1")
    return value


def port(value: str) -> int:
    """A TCP port number, 0 meaning any free port."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is outside 0-65535")
    return number


def positive(value: str) -> int:
    """A whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} must be at least 1")
    return number
