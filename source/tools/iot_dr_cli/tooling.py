"""What every operator tool shares: ``toolsrc`` variables, exit codes and one-line error messages.

Exit codes of every tool: 0 success; 1 the check failed or found drift, or AWS refused a call; 2 bad arguments or a
missing ``toolsrc`` variable (nothing was done); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from iot_dr.fleet.enumeration import IndexingDisabled

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


def default_region(given: str | None = None) -> str:
    """The region to work in: ``given``, else AWS_DEFAULT_REGION, else REGION from toolsrc."""
    return given or os.environ.get("AWS_DEFAULT_REGION") or toolsrc("REGION")


def run(prog: str, body: Callable[[Sequence[str]], int], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``body(argv)``; errors become ``<prog>: error: <message>`` on stderr and an exit code."""
    try:
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
