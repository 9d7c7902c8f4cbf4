"""The ``iot-dr`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from iot_dr.core.logs import configure_logging
from iot_dr_cli.arguments import region
from iot_dr_cli.operations import (
    OperatorError,
    discard_dead_letters,
    format_dead_letters,
    list_dead_letters,
    replay_dead_letters,
    resolve_targets,
)
from iot_dr_cli.sync import register as register_sync

# Exit codes (README, "Exit codes"): 0 done, 1 the operation failed, 2 bad usage (argparse's own code), 130 interrupted.
EXIT_FAILURE = 1
# A subcommand whose package is not installed (``iot-dr local`` and ``iot-dr demo`` without the ``local`` extra).
EXIT_NOT_INSTALLED = 3
COMMANDS_GROUP = "iot_dr.commands"
# The subcommands the local cloud (the ``local`` extra) adds through COMMANDS_GROUP.
LOCAL_CLOUD_COMMANDS = ("demo", "drill", "local")
LOCAL_CLOUD_MODULES = frozenset({"iot_dr_local", "moto", "psutil", "plotly"})
LOCAL_CLOUD_INSTALL = "pip install 'disaster-recovery-for-aws-iot[local]' (from a checkout: pip install '.[local]')"
EXIT_USAGE = 2


def _add_secondary_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", type=region, required=True, help="the secondary region")
    parser.add_argument("--stack", help="the secondary stack (IoTDRSecondary<postfix>); its outputs name the rest")
    parser.add_argument("--table", help="the dead-letter table, if not taken from --stack")


def _add_plugin_commands(commands: Any) -> None:
    """Subcommands other packages add through the ``iot_dr.commands`` entry-point group (the local cloud's ``local``
    and ``demo``). A local-cloud command that cannot be loaded still parses, and says how to install it."""
    added = set()
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda item: item.name):
        try:
            register = entry.load()
        except ImportError as err:
            # The local extra is missing; any other import error is a bug to show.
            if err.name not in LOCAL_CLOUD_MODULES:
                raise
            continue
        register(commands)
        added.add(entry.name)
    for name in LOCAL_CLOUD_COMMANDS:
        if name not in added:
            # Any arguments (options included: ``drill --aws``) get the install hint, not "unrecognized arguments".
            parser = commands.add_parser(name, help=f"(not installed: {LOCAL_CLOUD_INSTALL})", add_help=False)
            parser.set_defaults(run=lambda args, name=name: _not_installed(name), accepts_any_arguments=True)


def _not_installed(name: str) -> int:
    print(
        f"iot-dr: error: 'iot-dr {name}' needs the local cloud, which is not installed: {LOCAL_CLOUD_INSTALL}",
        file=sys.stderr,
    )
    return EXIT_NOT_INSTALLED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iot-dr", description="Disaster Recovery for AWS IoT")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_plugin_commands(commands)
    register_sync(commands)

    dead_letters = commands.add_parser("dead-letters", help="list events parked in the secondary")
    _add_secondary_target_arguments(dead_letters)
    dead_letters.add_argument("--json", action="store_true", help="print JSON")
    dead_letters.add_argument(
        "--discard", action="append", metavar="ID", help="delete this parked event for good, without replaying it"
    )

    replay = commands.add_parser("replay", help="send parked events through the replication workflow again")
    _add_secondary_target_arguments(replay)
    replay.add_argument("--state-machine-arn", help="the replication state machine, if not taken from --stack")
    replay.add_argument("--id", action="append", dest="ids", help="replay only this dead letter (repeatable)")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    return parser


def _run(args: argparse.Namespace) -> int:
    if hasattr(args, "run"):
        return int(args.run(args))
    targets = resolve_targets(args.region, args.stack, args.table, getattr(args, "state_machine_arn", None))
    if args.command == "dead-letters" and args.discard:
        print(json.dumps({"discarded": discard_dead_letters(args.region, targets, args.discard)}, indent=2))
        return 0
    if args.command == "dead-letters":
        print(format_dead_letters(list_dead_letters(args.region, targets), args.json))
        return 0
    report = replay_dead_letters(args.region, targets, args.ids, args.dry_run)
    unknown = sorted(set(args.ids or ()) - set(report.replayed) - set(report.failed))
    if unknown:
        raise OperatorError(f"no parked event with id {', '.join(unknown)}")
    print(json.dumps({"replayed": report.replayed, "failed": report.failed, "dryRun": args.dry_run}, indent=2))
    return EXIT_FAILURE if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging("WARNING")
    try:
        return _run(args)
    except (OperatorError, ClientError, BotoCoreError) as err:
        print(f"iot-dr: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except ValueError as err:  # botocore's own complaint about AWS_ENDPOINT_URL and similar settings
        print(f"iot-dr: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:500]


if __name__ == "__main__":
    sys.exit(main())
