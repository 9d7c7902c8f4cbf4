"""The ``iot-dr drill`` command line; ranges are checked by ``run.validate`` so every bad value gets one message."""

from __future__ import annotations

import argparse
from pathlib import Path

from iot_dr_cli.arguments import from_arguments, number, region
from iot_dr_local.drill.options import DEFAULT_CLIENTS, DrillOptions


def _dns_server(value: str) -> tuple[str, int]:
    from iot_dr_cli.pubsub import UsageError, parse_dns_server

    try:
        address = parse_dns_server(value)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--dns-server: ")) from None
    assert address is not None
    return address


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
        "--outage-seconds", type=number, default=3.0, help="seconds to stay failed over once every client is back"
    )
    parser.add_argument(
        "--health-check-interval", type=number, default=0.5, help="seconds between health-check probes (default 0.5)"
    )
    against = parser.add_argument_group(
        "against a deployment",
        "--aws drills the deployment replicating --primary-region to --secondary-region in the account of the AWS "
        "SDK's credentials (AWS_ENDPOINT_URL honoured): test devices are created and deleted, and the outage is the "
        "primary's Route 53 health check made to fail, restored afterwards",
    )
    against.add_argument("--aws", action="store_true", help="drill the deployment instead of the local cloud")
    against.add_argument("--stack-postfix", help="the deployment's stack postfix (default: found by its outputs)")
    against.add_argument("--record", help="the failover record's name (default: found in Route 53)")
    against.add_argument(
        "--dns-server", type=_dns_server, help="resolve the failover record here, as host:port (default: the system's)"
    )
    against.add_argument(
        "--switch-timeout",
        type=number,
        default=600.0,
        help="seconds to wait for replication, for each DNS switch and for the simulated devices to connect or "
        "switch (default 600)",
    )
    against.add_argument(
        "--mqtt-port", type=int, default=8883, help="MQTT port of the regional endpoints for the simulated devices"
    )
    against.add_argument(
        "--root-ca",
        type=Path,
        help="CA file the simulated devices trust (default: the system's trust store, with Amazon's root CAs)",
    )
    against.add_argument(
        "--restore",
        action="store_true",
        help="undo the health-check edit a killed drill left (recorded in --report) and exit",
    )


def options_from(args: argparse.Namespace) -> DrillOptions:
    clients = args.clients if args.clients is not None else min(DEFAULT_CLIENTS, max(1, args.devices))
    return from_arguments(DrillOptions, args, report_dir=args.report, clients=clients)
