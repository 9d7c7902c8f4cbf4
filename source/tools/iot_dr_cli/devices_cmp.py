"""``iot-devices-cmp.py``: are the devices of the primary replicated whole to the secondary?

Compares every device matching a fleet-index query in either region: thing attributes and type, groups, every
certificate (ID and status), every attached policy (documents region-aware, default version) and the classic and
named shadows. Prints a table and the counts, writes a drift report with ``--json FILE``, and exits 1 when any
device is not in sync (exit codes: ``iot_dr_cli.tooling``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from iot_dr.fleet.drift import DeviceDrift, Region, compare_fleet
from iot_dr.fleet.enumeration import DEFAULT_QUERY, thing_names
from iot_dr_cli.arguments import max_workers, non_negative_seconds, output_file
from iot_dr_cli.tooling import EXIT_FAILURE, EXIT_OK, region_pair, run

PROG = "iot-devices-cmp.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--primary-region", help="default: PRIMARY_REGION from toolsrc")
    parser.add_argument("--secondary-region", help="default: SECONDARY_REGION from toolsrc")
    parser.add_argument("--query-string", default=DEFAULT_QUERY, help=f"fleet-index query (default {DEFAULT_QUERY})")
    parser.add_argument("--max-workers", type=max_workers, default=10, help="parallel comparisons, 1-50 (default 10)")
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the drift report as JSON to FILE")
    parser.add_argument(
        "--wait",
        type=non_negative_seconds,
        default=0.0,
        metavar="SECONDS",
        help="re-compare devices out of sync for up to SECONDS",
    )
    parser.add_argument("--no-shadows", action="store_true", help="do not compare shadows")
    return parser


def report(primary: str, secondary: str, query: str, drifts: list[DeviceDrift]) -> dict[str, Any]:
    """The drift report: counts and every device that is not in sync."""
    return {
        "primaryRegion": primary,
        "secondaryRegion": secondary,
        "queryString": query,
        "compared": len(drifts),
        "inSync": sum(d.in_sync for d in drifts),
        "notInSync": sum(bool(d.differences) for d in drifts),
        "errors": sum(d.error is not None for d in drifts),
        "devices": [d.as_json() for d in drifts if not d.in_sync],
    }


def format_table(drifts: list[DeviceDrift]) -> str:
    lines = [f"{'thing':<40} {'status':<12} differences"]
    for drift in drifts:
        status = "in sync" if drift.in_sync else ("ERROR" if drift.error else "NOT IN SYNC")
        detail = drift.error or ", ".join(d.field for d in drift.differences)
        lines.append(f"{drift.name:<40} {status:<12} {detail}")
    return "\n".join(lines)


def format_counts(result: dict[str, Any]) -> str:
    """The counts line of a ``report``, in the archived tool's words."""
    return (
        f"NUM_THINGS_COMPARED: {result['compared']} NUM_THINGS_IN_SYNC: {result['inSync']} "
        f"NUM_THINGS_NOTSYNCED: {result['notInSync']} NUM_ERRORS: {result['errors']}"
    )


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    primary_name, secondary_name = region_pair(args.primary_region, args.secondary_region)
    primary, secondary = Region.limited(primary_name), Region.limited(secondary_name)
    names = {*thing_names(primary.iot, args.query_string), *thing_names(secondary.iot, args.query_string)}
    drifts = compare_fleet(primary, secondary, names, args.max_workers, not args.no_shadows, args.wait)
    result = report(primary_name, secondary_name, args.query_string, drifts)
    print(format_table(drifts))
    print(format_counts(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return EXIT_OK if result["compared"] == result["inSync"] else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
