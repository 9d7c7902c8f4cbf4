"""``delete-things.py``: delete the things a fleet-index query matches, with what only they use.

Each thing's shadows are deleted; its certificates are detached, and deleted when no other thing uses them; their
policies are deleted when nothing else is attached to them. Asks for confirmation unless ``-f``. Delete in the
primary: the replication deletes in the secondary. Exit 1 when any thing could not be deleted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from iot_dr.fleet.drift import Region
from iot_dr.fleet.enumeration import thing_names
from iot_dr.fleet.removal import delete_device
from iot_dr_cli.tooling import EXIT_FAILURE, EXIT_OK, ToolError, default_region, run

PROG = "delete-things.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", help="default: AWS_DEFAULT_REGION, else REGION from toolsrc")
    parser.add_argument("--query-string", required=True, help='e.g. "thingName:dr-test-*"')
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    return parser


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    region = Region.limited(default_region(args.region))
    names = sorted(thing_names(region.iot, args.query_string))
    if not names:
        print(f"no things match {args.query_string} in {region.name}")
        return EXIT_OK
    if not args.force:
        print(f"{len(names)} things in {region.name} WILL BE DELETED INCLUDING CERTIFICATES, POLICIES AND SHADOWS")
        print("\n".join(names))
        try:
            answer = input("type 'yes' to delete: ")
        except EOFError:
            answer = ""
        if answer.strip() != "yes":
            raise ToolError("not confirmed: nothing deleted (pass -f to skip the question)")
    deleted = errors = 0
    for name in names:
        try:
            removed = delete_device(region.iot, region.iot_data, name)
        except Exception as err:  # one thing's failure must not stop the others
            errors += 1
            print(f"error: {name}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        if removed is not None:
            deleted += 1
            print(f"deleted {name}: certificates {removed.certificates} policies {removed.policies}")
    print(f"stats: NUM_THINGS: {len(names)} NUM_THINGS_DELETED: {deleted} NUM_ERRORS: {errors}")
    return EXIT_FAILURE if errors else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
