"""The ``iot-dr drill`` command line; ranges are checked by ``run.validate`` so every bad value gets one message."""

from __future__ import annotations

import argparse
from pathlib import Path

from iot_dr_cli.arguments import region
from iot_dr_local.drill.options import DEFAULT_CLIENTS, DrillOptions


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=100, help="devices in the fleet (default 100)")
    parser.add_argument(
        "--clients",
        type=int,
        help=f"simulated devices publishing QoS 1 messages throughout (default {DEFAULT_CLIENTS}, at most --devices)",
    )
    parser.add_argument(
        "--report", type=Path, default=Path("drill-report"), help="report directory (default drill-report)"
    )
    parser.add_argument("--primary-region", type=region, default="us-east-1")
    parser.add_argument("--secondary-region", type=region, default="us-west-2")
    parser.add_argument(
        "--outage-seconds", type=_number, default=3.0, help="seconds to stay failed over once every client is back"
    )
    parser.add_argument(
        "--health-check-interval", type=_number, default=0.5, help="seconds between health-check probes (default 0.5)"
    )


def options_from(args: argparse.Namespace) -> DrillOptions:
    return DrillOptions(
        devices=args.devices,
        report_dir=args.report,
        primary_region=args.primary_region,
        secondary_region=args.secondary_region,
        clients=args.clients if args.clients is not None else min(DEFAULT_CLIENTS, max(1, args.devices)),
        outage_seconds=args.outage_seconds,
        health_check_interval=args.health_check_interval,
    )
