"""Keys and CSRs per second for bulk provisioning, against the archived tool's 2.7 per second.

Run: nice -n 10 .venv/bin/python benchmarks/keygen.py [--count 30000] [--algorithm ec|rsa] [--workers N]
Target (issue 10): 30,000 EC P-256 keys and CSRs in <= 30 s on 2 cores (>= 1,000 per second).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from iot_dr_cli.keygen import ALGORITHMS, ARCHIVED_RATE, generate_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="ec")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    names = [f"bench-{i}" for i in range(args.count)]
    with tempfile.TemporaryDirectory(prefix="iot-dr-keygen-") as directory:
        started = time.perf_counter()
        csrs = generate_batch(names, Path(directory), args.algorithm, args.workers)
        elapsed = time.perf_counter() - started
        assert len(csrs) == args.count and len(os.listdir(directory)) == args.count
    rate = args.count / elapsed
    print(
        f"keygen: {args.count} {args.algorithm} keys+CSRs in {elapsed:.1f} s on {args.workers} workers "
        f"({os.cpu_count()} cores): {rate:,.0f}/s, {rate / ARCHIVED_RATE:,.0f}x the archived {ARCHIVED_RATE:.1f}/s; "
        f"30,000 would take {30_000 / rate:.1f} s (target <= 30 s)"
    )


if __name__ == "__main__":
    main()
