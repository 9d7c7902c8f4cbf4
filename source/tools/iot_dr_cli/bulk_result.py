"""``bulk-result.py results.json``: write each device certificate of a bulk registration to ``<thing>.crt``.

Reads the results file of a thing registration task (one JSON object per line, ``response.CertificatePem`` and
``response.ResourceArns.thing``) and writes the certificates next to it, or to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from iot_dr_cli.tooling import EXIT_OK, ToolError, run

PROG = "bulk-result.py"


def write_certificates(results: Path, directory: Path) -> list[str]:
    """Write ``<thing>.crt`` for every result line; returns the thing names. Raises ``ToolError`` on bad lines."""
    things = []
    for number, line in enumerate(results.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            response = json.loads(line)["response"]
            thing = response["ResourceArns"]["thing"].rsplit("/", 1)[-1]
            pem = response["CertificatePem"]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ToolError(f"{results}:{number}: not a bulk registration result line ({err})") from err
        (directory / f"{thing}.crt").write_text(pem)
        things.append(thing)
    return things


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results.json of a thing registration task")
    parser.add_argument("--output-dir", type=Path, help="where to write the certificates (default: next to results)")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        raise ToolError(f"file not found: {args.results}", 2)
    things = write_certificates(args.results, args.output_dir or args.results.parent)
    print(f"wrote {len(things)} certificates")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
