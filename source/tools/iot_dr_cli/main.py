"""The ``iot-dr`` command."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from iot_dr.logs import configure_logging
from iot_dr_cli.operations import (
    OperatorError,
    discard_dead_letters,
    format_dead_letters,
    list_dead_letters,
    replay_dead_letters,
    resolve_targets,
)

# Exit codes (README, "Exit codes"): 0 done, 1 the operation failed, 2 bad usage (argparse's own code), 130 interrupted.
EXIT_FAILURE = 1
EXIT_USAGE = 2
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


def _add_secondary_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", type=region, required=True, help="the secondary region")
    parser.add_argument("--stack", help="the secondary stack (IoTDRSecondary<postfix>); its outputs name the rest")
    parser.add_argument("--table", help="the dead-letter table, if not taken from --stack")


def _add_state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".iot-dr-local"), help="where the state file of local up is"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iot-dr", description="Disaster Recovery for AWS IoT")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser("local", help="the local two-region cloud").add_subparsers(
        dest="local_command", required=True, metavar="LOCAL_COMMAND"
    )
    up = local.add_parser("up", help="start the local cloud, deploy the solution and serve until interrupted")
    up.add_argument("--port", type=port, default=5000, help="port on 127.0.0.1 (default 5000; 0 picks a free one)")
    up.add_argument("--primary-region", type=region, default="us-east-1")
    up.add_argument("--secondary-region", type=region, default="us-west-2")
    _add_state_dir_argument(up)
    up.add_argument("--no-failover", action="store_true", help="no MQTT brokers, DNS server or Route 53 emulation")
    up.add_argument("--mqtt-port", type=port, default=8883, help="the brokers' port (default 8883; 0 picks a free one)")
    up.add_argument(
        "--dns-port", type=port, default=15353, help="DNS server port on 127.0.0.1 (default 15353; 0 picks a free one)"
    )
    up.add_argument(
        "--health-check-interval", type=float, default=1.0, help="seconds between health-check probes (default 1)"
    )
    up.add_argument(
        "--failure-threshold",
        type=positive,
        help="probes that change a health check's status (default: as deployed, or 3)",
    )
    up.add_argument("--record-ttl", type=positive, help="TTL of the failover CNAME (default: as deployed, or 1 s)")
    for name, help_text in (
        ("outage", "stop a region's MQTT broker, as in a regional outage"),
        ("restore", "start a region's MQTT broker again"),
    ):
        command = local.add_parser(name, help=help_text)
        command.add_argument("region", help="the region whose broker to stop or start")
        _add_state_dir_argument(command)

    demo = commands.add_parser("demo", help="replicate a small fleet on the local cloud and show the parity table")
    demo.add_argument("--things", type=positive, default=20, help="number of devices to create (default 20)")
    demo.add_argument("--primary-region", type=region, default="us-east-1")
    demo.add_argument("--secondary-region", type=region, default="us-west-2")

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


def _run_local(args: argparse.Namespace) -> int:
    from iot_dr_cli import local

    if args.local_command == "outage":
        return local.outage(args.region, args.state_dir)
    if args.local_command == "restore":
        return local.restore(args.region, args.state_dir)
    settings = local.FailoverSettings(
        record_ttl=args.record_ttl,
        request_interval=args.health_check_interval,
        failure_threshold=args.failure_threshold,
        mqtt_port=args.mqtt_port,
        dns_port=args.dns_port,
    )
    options = local.UpOptions(
        args.port, args.primary_region, args.secondary_region, args.state_dir, not args.no_failover, settings
    )
    return local.serve(options)


def _run(args: argparse.Namespace) -> int:
    if args.command == "local":
        return _run_local(args)
    if args.command == "demo":
        from iot_dr_cli.demo import run_demo

        return run_demo(args.things, args.primary_region, args.secondary_region)
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
    args = build_parser().parse_args(argv)
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
