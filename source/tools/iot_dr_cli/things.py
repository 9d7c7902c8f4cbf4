"""The guide's listing tools: ``iot-search-devices.py``, ``list-all-things.py`` and ``list-thing.py``.

``iot-search-devices.py --query-string Q`` and ``list-all-things.py [PATTERN]`` print one thing name per line and
``NUM_THINGS: n`` (fleet index, every page; ``list-all-things.py`` falls back to ListThings when indexing is off).
``list-thing.py THING`` prints the thing, each certificate and each of its policies as JSON. Exit codes:
``iot_dr_cli.tooling`` (an unknown thing is exit 1).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from iot_dr.core import aws
from iot_dr.fleet.enumeration import DEFAULT_QUERY, thing_names
from iot_dr.secondary.replicate.context import certificate_id_of, is_not_found, paginate
from iot_dr_cli.tooling import EXIT_OK, ToolError, default_region, run


def _print_names(region: str, query: str) -> int:
    count = 0
    for name in thing_names(aws.client("iot", region), query):
        print(name, flush=False)
        count += 1
    print(f"region: {region} query_string: {query}: NUM_THINGS: {count}")
    return EXIT_OK


def _search(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="iot-search-devices.py", description="Things matching a fleet-index query.")
    parser.add_argument("--query-string", required=True, help='e.g. "thingName:iot-dr*"')
    parser.add_argument("--region", help="default: AWS_DEFAULT_REGION, else REGION from toolsrc")
    args = parser.parse_args(argv)
    return _print_names(default_region(args.region), args.query_string)


def _list_all(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="list-all-things.py", description="All things, or those matching PATTERN.")
    parser.add_argument("pattern", nargs="?", help="thing-name pattern with * wildcards (default: every thing)")
    parser.add_argument("--region", help="default: AWS_DEFAULT_REGION, else REGION from toolsrc")
    args = parser.parse_args(argv)
    query = f"thingName:{args.pattern}" if args.pattern else DEFAULT_QUERY
    return _print_names(default_region(args.region), query)


def describe_device(iot: Any, name: str) -> dict[str, Any]:
    """The thing, its certificates and their policies, as ``list-thing.py`` prints them; raises ``ToolError``."""
    try:
        thing = iot.describe_thing(thingName=name)
    except Exception as err:
        if is_not_found(err):
            raise ToolError(f"thing {name} does not exist in {iot.meta.region_name}") from err
        raise
    thing.pop("ResponseMetadata", None)
    certificates = []
    for arn in paginate(iot, "list_thing_principals", "principals", thingName=name):
        certificate_id = certificate_id_of(arn)
        if certificate_id is None:
            certificates.append({"principal": arn})
            continue
        description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        policies = []
        for policy in paginate(iot, "list_attached_policies", "policies", target=arn):
            document = iot.get_policy(policyName=policy["policyName"])
            policies.append(
                {
                    "policyName": document["policyName"],
                    "defaultVersionId": document["defaultVersionId"],
                    "policyDocument": json.loads(document["policyDocument"]),
                }
            )
        certificates.append(
            {
                "certificateId": certificate_id,
                "status": description["status"],
                "creationDate": description["creationDate"].isoformat(),
                "validity": {k: v.isoformat() for k, v in description.get("validity", {}).items()},
                "certificateMode": description.get("certificateMode"),
                "policies": policies,
            }
        )
    return {"thing": thing, "certificates": certificates}


def _list_thing(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="list-thing.py", description="A thing with its certificates and policies.")
    parser.add_argument("thing_name")
    parser.add_argument("--region", help="default: AWS_DEFAULT_REGION, else REGION from toolsrc")
    args = parser.parse_args(argv)
    iot = aws.client("iot", default_region(args.region))
    print(json.dumps(describe_device(iot, args.thing_name), indent=2, default=str))
    return EXIT_OK


def search_main(argv: Sequence[str] | None = None) -> int:
    return run("iot-search-devices.py", _search, argv)


def list_all_main(argv: Sequence[str] | None = None) -> int:
    return run("list-all-things.py", _list_all, argv)


def list_thing_main(argv: Sequence[str] | None = None) -> int:
    return run("list-thing.py", _list_thing, argv)
