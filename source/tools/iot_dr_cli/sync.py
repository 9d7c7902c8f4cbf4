"""``iot-dr sync region-to-region|region-to-ddb``: copy a fleet that predates the solution into the secondary.

Settings come from the guide's environment variables; each flag overrides its variable. Prints one JSON summary
on standard output. Exit codes: 0 every device synced, 1 a device failed (listed in the summary) or AWS refused,
2 bad settings (one line on standard error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from iot_dr.core import aws
from iot_dr.sync.checkpoint import open_checkpoint
from iot_dr.sync.runner import KINDS, REGION_TO_DDB, sync
from iot_dr.sync.settings import SettingsError, from_values

EXIT_FAILED = 1
EXIT_USAGE = 2

# Flag destination → the guide's environment variable.
VARIABLES = {
    "primary_region": "PRIMARY_REGION",
    "secondary_region": "SECONDARY_REGION",
    "mode": "SYNC_MODE",
    "query_string": "QUERY_STRING",
    "max_workers": "MAX_WORKERS",
    "table": "DYNAMODB_GLOBAL_TABLE",
    "shard": "SHARD",
}


def register(commands: Any) -> None:
    """Add ``sync`` to the ``iot-dr`` subcommands."""
    parser = commands.add_parser("sync", help="copy devices that existed before the solution into the secondary")
    parser.add_argument(
        "kind", choices=KINDS, help="region-to-region: write the secondary; region-to-ddb: feed the table"
    )
    parser.add_argument("--primary-region", help="default $PRIMARY_REGION")
    parser.add_argument("--secondary-region", help="default $SECONDARY_REGION")
    parser.add_argument(
        "--mode", help="smart (skip devices already in the secondary) or repair; default $SYNC_MODE or smart"
    )
    parser.add_argument("--query-string", help="fleet-index query; default $QUERY_STRING or 'thingName: *'")
    parser.add_argument("--max-workers", help="parallel devices, 1-50; default $MAX_WORKERS or 10")
    parser.add_argument("--table", help="region-to-ddb: the global table; default $DYNAMODB_GLOBAL_TABLE")
    parser.add_argument("--shard", help="i/n: sync only the i-th of n deterministic parts of the fleet; default $SHARD")
    parser.add_argument(
        "--checkpoint",
        help="where finished devices are recorded, so a run started again continues: a file path, or "
        "dynamodb://<table>/<key> (a table in the primary region keyed by checkpoint and thing); default $CHECKPOINT",
    )
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="OPERATION=N",
        help="requests per second for an IoT operation (raised quotas), e.g. RegisterCertificateWithoutCA=50",
    )
    parser.add_argument("--quota-file", type=Path, help="JSON object of operation → requests per second")
    parser.set_defaults(run=run_command)


def _values(args: argparse.Namespace) -> dict[str, str | None]:
    values: dict[str, str | None] = {name: os.environ.get(name) for name in (*VARIABLES.values(), "RATES")}
    for dest, name in VARIABLES.items():
        if getattr(args, dest) is not None:
            values[name] = str(getattr(args, dest))
    rates = list(args.rate)
    if args.quota_file:
        try:
            quotas = json.loads(args.quota_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SettingsError(f"quota file {args.quota_file}: {err}") from None
        if not isinstance(quotas, dict):
            raise SettingsError(f"quota file {args.quota_file} must hold a JSON object of operation → rate")
        rates = [f"{name}={value}" for name, value in quotas.items()] + rates
    if rates:
        values["RATES"] = ",".join(filter(None, [values.get("RATES"), *rates]))
    return values


def run_command(args: argparse.Namespace) -> int:
    try:
        settings = from_values(_values(args), needs_table=args.kind == REGION_TO_DDB)
        location = args.checkpoint or os.environ.get("CHECKPOINT")
        region = settings.primary_region
        checkpoint = open_checkpoint(location, lambda: aws.client("dynamodb", region)) if location else None
        # tqdm draws only on a terminal (disable=None); the summary alone goes to standard output.
        with tqdm(desc=args.kind, unit="device", disable=None, file=sys.stderr) as bar:
            summary = sync(args.kind, settings, checkpoint, bar.update)
    except SettingsError as err:
        print(f"iot-dr sync: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(summary.as_json(), indent=2))
    return EXIT_FAILED if summary.failed else 0
