"""The ``iot-dr`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from iot_dr.logs import configure_logging
from iot_dr_cli.operations import (
    OperatorError,
    format_dead_letters,
    list_dead_letters,
    replay_dead_letters,
    resolve_targets,
)

EXIT_FAILURE = 1


def _add_secondary_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", required=True, help="the secondary region")
    parser.add_argument("--stack", help="the secondary stack (IoTDRSecondary<postfix>); its outputs name the rest")
    parser.add_argument("--table", help="the dead-letter table, if not taken from --stack")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iot-dr", description="Disaster Recovery for AWS IoT")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser("local", help="the local two-region cloud").add_subparsers(
        dest="local_command", required=True, metavar="LOCAL_COMMAND"
    )
    up = local.add_parser("up", help="start the local cloud, deploy the solution and serve until interrupted")
    up.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000; 0 picks a free one)")
    up.add_argument("--primary-region", default="us-east-1")
    up.add_argument("--secondary-region", default="us-west-2")

    demo = commands.add_parser("demo", help="replicate a small fleet on the local cloud and show the parity table")
    demo.add_argument("--things", type=int, default=20, help="number of devices to create (default 20)")
    demo.add_argument("--primary-region", default="us-east-1")
    demo.add_argument("--secondary-region", default="us-west-2")

    dead_letters = commands.add_parser("dead-letters", help="list events parked in the secondary")
    _add_secondary_target_arguments(dead_letters)
    dead_letters.add_argument("--json", action="store_true", help="print JSON")

    replay = commands.add_parser("replay", help="send parked events through the replication workflow again")
    _add_secondary_target_arguments(replay)
    replay.add_argument("--state-machine-arn", help="the replication state machine, if not taken from --stack")
    replay.add_argument("--id", action="append", dest="ids", help="replay only this dead letter (repeatable)")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "local":
        from iot_dr_cli.local import serve

        return serve(args.port, args.primary_region, args.secondary_region)
    if args.command == "demo":
        from iot_dr_cli.demo import run_demo

        return run_demo(args.things, args.primary_region, args.secondary_region)
    targets = resolve_targets(args.region, args.stack, args.table, getattr(args, "state_machine_arn", None))
    if args.command == "dead-letters":
        print(format_dead_letters(list_dead_letters(args.region, targets), args.json))
        return 0
    report = replay_dead_letters(args.region, targets, args.ids, args.dry_run)
    print(json.dumps({"replayed": report.replayed, "failed": report.failed, "dryRun": args.dry_run}, indent=2))
    return EXIT_FAILURE if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("WARNING")
    try:
        return _run(args)
    except (OperatorError, ClientError, BotoCoreError) as err:
        print(f"iot-dr: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
