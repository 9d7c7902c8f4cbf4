"""What every operator tool shares: ``toolsrc`` variables, exit codes and one-line error messages.

Exit codes of every tool: 0 success; 1 the check failed or found drift, or AWS refused a call; 2 bad arguments, an
unknown region, a malformed ``AWS_ENDPOINT_URL[_<SERVICE>]`` or a missing ``toolsrc`` variable (nothing was done);
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from iot_dr.fleet.enumeration import IndexingDisabled
from iot_dr.sync.settings import known_regions

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The variables the launcher writes to toolsrc (guide: "Testing tools").
TOOLSRC_VARIABLES = (
    "ARN_IOT_PROVISIONING_ROLE",
    "IOT_ENDPOINT_PRIMARY",
    "IOT_ENDPOINT_SECONDARY",
    "REGION",
    "S3_BUCKET",
    "DYNAMODB_GLOBAL_TABLE",
    "PRIMARY_REGION",
    "SECONDARY_REGION",
)


class ToolError(Exception):
    """A failure the operator can act on; printed as one line, exit code ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(ToolError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def toolsrc(name: str, given: str | None = None) -> str:
    """``given`` if set, else the environment variable ``name``; raises ``UsageError`` naming what to do."""
    value = given or os.environ.get(name)
    if not value:
        raise UsageError(f"{name} is not set: source toolsrc (. toolsrc) or pass it as an argument")
    return value


def check_region(value: str, what: str = "region") -> str:
    """``value`` if AWS IoT Core is offered there (botocore's endpoint data, no call); raises ``UsageError``, so a typo
    is not minutes of retries against an endpoint that does not exist."""
    if value not in known_regions():
        raise UsageError(f"{what} {value!r} is not an AWS region where AWS IoT Core is offered (such as us-east-1)")
    return value


def known_region(value: str) -> str:
    """argparse type for ``--*-region`` flags: ``check_region`` as a usage error of the flag."""
    try:
        return check_region(value)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def different_regions(primary: str, secondary: str) -> None:
    """Raise ``UsageError`` when the primary and secondary regions are the same."""
    if primary == secondary:
        raise UsageError(f"the primary and secondary regions are both {primary}: they must differ")


def existing_folder(value: str) -> Path:
    """argparse type for a folder the tool reads."""
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not an existing folder")
    return path


def region_setting(name: str, given: str | None = None) -> str:
    """The region in ``given`` or the ``toolsrc`` variable ``name``, checked by ``check_region``."""
    return check_region(toolsrc(name, given), name)


def region_pair(primary: str | None, secondary: str | None) -> tuple[str, str]:
    """The primary and secondary regions (flags, else ``toolsrc``): both known, and different."""
    pair = region_setting("PRIMARY_REGION", primary), region_setting("SECONDARY_REGION", secondary)
    different_regions(*pair)
    return pair


def default_region(given: str | None = None) -> str:
    """The region to work in: ``given``, else AWS_DEFAULT_REGION, else REGION from toolsrc; checked."""
    return check_region(given or os.environ.get("AWS_DEFAULT_REGION") or toolsrc("REGION"))


def check_endpoint_settings() -> None:
    """Raise ``UsageError`` naming ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_<SERVICE>`` when it is not a URL that
    botocore accepts (botocore would raise a bare ``ValueError`` at the first client)."""
    for name, value in sorted(os.environ.items()):
        setting = name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_")
        if setting and value and not (is_valid_endpoint_url(value) or is_valid_ipv6_endpoint_url(value)):
            raise UsageError(f"{name}={value!r} is not a URL such as https://host:port")


def run(prog: str, body: Callable[[Sequence[str]], int], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``body(argv)``; errors become ``<prog>: error: <message>`` on stderr and an exit code."""
    try:
        check_endpoint_settings()
        return body(sys.argv[1:] if argv is None else argv)
    except ToolError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except IndexingDisabled as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except (ClientError, BotoCoreError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
