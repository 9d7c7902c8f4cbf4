"""The ``iot-dr`` subcommands the local cloud adds: ``local up|outage|restore``, ``demo`` and ``drill``.

The product's ``iot-dr`` command finds these through the ``iot_dr.commands`` entry-point group; each entry point is a
``register(commands)`` function that adds one subcommand to the command's subparsers and sets ``run`` (``args`` ->
exit code) as its default. Nothing here imports moto: ``outage`` and ``restore`` must not wait seconds for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from iot_dr_cli.arguments import port, region
from iot_dr_local.drill.options import MAX_DEVICES
from iot_dr_local.quota_rules import QUOTA_PROFILES

DEFAULT_STATE_DIR = Path(".iot-dr-local")
# Route 53 health checks: FailureThreshold 1-10; record TTL 0 to 2^31-1 s (at least 1 here: the device re-resolves)
# (https://docs.aws.amazon.com/Route53/latest/APIReference/API_HealthCheckConfig.html,
# https://docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html).
MAX_FAILURE_THRESHOLD = 10
MAX_RECORD_TTL = 2**31 - 1
# Probe interval of the local emulation, seconds (the drill's range).
HEALTH_CHECK_INTERVAL_RANGE = (0.1, 30.0)


def _between(low: float, high: float, kind: Callable[[str], float] = int) -> Callable[[str], Any]:
    """argparse type: a number of ``kind`` from ``low`` to ``high``, checked when the command line is parsed."""

    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            what = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{value!r} is not a {what}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value} must be between {low} and {high}")
        return number

    return parse


def _add_state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where the state file of local up is")


def register_local(commands: Any) -> None:
    """``iot-dr local up|outage|restore``."""
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
        "--health-check-interval",
        type=_between(*HEALTH_CHECK_INTERVAL_RANGE, kind=float),
        default=1.0,
        help="seconds between health-check probes, 0.1-30 (default 1)",
    )
    up.add_argument(
        "--failure-threshold",
        type=_between(1, MAX_FAILURE_THRESHOLD),
        help="probes that change a health check's status, 1-10 (default: as deployed, or 3)",
    )
    up.add_argument(
        "--record-ttl",
        type=_between(1, MAX_RECORD_TTL),
        help="TTL of the failover CNAME (default: as deployed, or 1 s)",
    )
    up.add_argument(
        "--quotas",
        choices=sorted(QUOTA_PROFILES),
        help="throttle IoT API calls above AWS's default rates per account, region and operation (default: off)",
    )
    up.set_defaults(run=_run_up)
    for name, help_text in (
        ("outage", "take a region's API down (503) and stop its MQTT broker, as in a regional outage"),
        ("restore", "bring a region's API up and start its MQTT broker again"),
    ):
        command = local.add_parser(name, help=help_text)
        command.add_argument("region", help="the region to take down or bring up")
        _add_state_dir_argument(command)
        command.set_defaults(run=_run_broker_command)


def register_demo(commands: Any) -> None:
    """``iot-dr demo``."""
    demo = commands.add_parser("demo", help="replicate a small fleet on the local cloud and show the parity table")
    demo.add_argument(
        "--things",
        type=_between(1, MAX_DEVICES),
        default=20,
        help=f"number of devices to create, 1-{MAX_DEVICES} (default 20)",
    )
    demo.add_argument("--primary-region", type=region, default="us-east-1")
    demo.add_argument("--secondary-region", type=region, default="us-west-2")
    demo.set_defaults(run=_run_demo)


def register_drill(commands: Any) -> None:
    """``iot-dr drill``."""
    from iot_dr_local.drill.arguments import add_drill_arguments

    drill = commands.add_parser(
        "drill",
        help="the disaster-recovery drill (on the local cloud, or --aws against a deployment): replicate, lose the "
        "primary, fail over and back, report",
    )
    add_drill_arguments(drill)
    drill.set_defaults(run=_run_drill)


def _run_drill(args: argparse.Namespace) -> NoReturn:
    from iot_dr_local.drill.arguments import options_from

    options = options_from(args)
    if args.restore:
        from iot_dr_local.drill.aws_run import restore_recorded

        code = restore_recorded(options)
    elif options.aws:
        from iot_dr_local.drill.aws_run import run_aws_drill

        code = run_aws_drill(options)
    else:
        from iot_dr_local.drill.run import run_drill

        code = run_drill(options)
    # As local up: everything is stopped; finalizing moto's heap would only add seconds.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_up(args: argparse.Namespace) -> NoReturn:
    from iot_dr_local import local_up
    from iot_dr_local.failover_plan import FailoverSettings

    settings = FailoverSettings(
        record_ttl=args.record_ttl,
        request_interval=args.health_check_interval,
        failure_threshold=args.failure_threshold,
        mqtt_port=args.mqtt_port,
        dns_port=args.dns_port,
    )
    options = local_up.UpOptions(
        args.port,
        args.primary_region,
        args.secondary_region,
        args.state_dir,
        not args.no_failover,
        settings,
        args.quotas,
    )
    code = local_up.serve(options)
    # Everything is stopped and cleaned up by now; finalizing the interpreter would only free moto's heap, which
    # takes seconds on a busy machine and would break the promise to stop within 5 s of SIGTERM or Ctrl-C.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_broker_command(args: argparse.Namespace) -> int:
    from iot_dr_local import local_up

    if args.local_command == "outage":
        return local_up.outage(args.region, args.state_dir)
    return local_up.restore(args.region, args.state_dir)


def _run_demo(args: argparse.Namespace) -> int:
    from iot_dr_local.demo import run_demo

    return run_demo(args.things, args.primary_region, args.secondary_region)
