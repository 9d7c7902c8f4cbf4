"""``python -m iot_dr_cli.uninstall``: remove one deployment from a workstation, as the main stack's Delete does."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from iot_dr.deploy.uninstall import Deployment, uninstall
from iot_dr_cli.tooling import different_regions, known_region, run

EXIT_INCOMPLETE = 1
PROG = "python -m iot_dr_cli.uninstall"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Remove one deployment of Disaster Recovery for AWS IoT.")
    parser.add_argument("--primary-region", type=known_region, required=True)
    parser.add_argument("--secondary-region", type=known_region, required=True)
    parser.add_argument("--stack-postfix", required=True, help="the postfix of the IoTDRPrimary<postfix> stack")
    parser.add_argument("--bucket-suffix", required=True, help="buckets are iot-dr-primary|secondary-<suffix>")
    parser.add_argument("--timeout", type=float, help="stop waiting after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code 0 when everything is gone, 1 with each failure or unfinished deletion on standard error, 2 bad
    arguments or endpoint settings (``iot_dr_cli.tooling``)."""
    return run(PROG, _main, argv)


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    different_regions(args.primary_region, args.secondary_region)
    deployment = Deployment(args.primary_region, args.secondary_region, args.stack_postfix, args.bucket_suffix)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    report = uninstall(deployment, lambda line: print(line, flush=True), deadline=deadline)
    if report.complete:
        print(report.summary())
        return 0
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    for pending in report.pending:
        print(f"still deleting: {pending}", file=sys.stderr)
    return EXIT_INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
