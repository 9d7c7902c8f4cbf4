"""``bulk-bench.sh <base_thingname> <num_things>``: create devices with AWS IoT bulk registration, timed.

Generates a key and a CSR per device in parallel on every core (EC P-256, or RSA 2048 with ``--rsa``) into
``<base>-<%Y-%m-%d_%H-%M-%S>/``, uploads the registration input to ``S3_BUCKET``, starts a thing registration task
with ``ARN_IOT_PROVISIONING_ROLE`` (things ``<base>1..<base>N`` with attribute ``serialNumber``, active certificates
from the CSRs, the policy ``<base>_Policy`` from ``sample-pol1.json`` or ``--policy-name``), waits for it, downloads
``results.json`` and ``errors.json`` and writes ``<thing>.crt`` per device. Prints both times. Exit 1 when the task
failed or any device could not be registered.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iot_dr.core import aws
from iot_dr_cli.arguments import positive
from iot_dr_cli.bulk_result import write_certificates
from iot_dr_cli.keygen import ARCHIVED_RATE, generate_batch
from iot_dr_cli.tooling import EXIT_FAILURE, EXIT_OK, ToolError, UsageError, default_region, run, toolsrc

PROG = "bulk-bench.sh"
# AWS IoT thing names: https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html
THING_NAME = re.compile(r"^[a-zA-Z0-9:_-]+$")
POLL_FIRST, POLL_MAX = 1.0, 10.0


def template_body(policy_name: str) -> str:
    """The provisioning template: thing with a serial number, active certificate from the CSR, named policy."""
    return json.dumps(
        {
            "Parameters": {
                "ThingName": {"Type": "String"},
                "SerialNumber": {"Type": "String"},
                "CSR": {"Type": "String"},
            },
            "Resources": {
                "thing": {
                    "Type": "AWS::IoT::Thing",
                    "Properties": {
                        "ThingName": {"Ref": "ThingName"},
                        "AttributePayload": {"serialNumber": {"Ref": "SerialNumber"}},
                    },
                },
                "certificate": {
                    "Type": "AWS::IoT::Certificate",
                    "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"},
                },
                "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
            },
        }
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("base_thingname")
    parser.add_argument("num_things", type=positive)
    parser.add_argument("--rsa", action="store_true", help="RSA 2048 keys instead of EC P-256")
    parser.add_argument("--workers", type=positive, help="key generation processes (default: every core)")
    parser.add_argument("--policy-name", help="the template attaches this policy instead of <base>_Policy")
    parser.add_argument("--policy-file", type=Path, help="policy template for <base>_Policy (sample-pol1.json)")
    parser.add_argument("--template", type=Path, help="provisioning template file instead of the built-in one")
    parser.add_argument("--timeout", type=positive, default=3600, help="seconds to wait for the task")
    return parser


def _ensure_policy(iot: Any, region: str, name: str, policy_file: Path | None) -> str:
    """The policy ``name``, created from ``policy_file`` (region and account filled in) unless it exists."""
    try:
        iot.get_policy(policyName=name)
        return name
    except iot.exceptions.ResourceNotFoundException:
        pass
    if policy_file is None or not policy_file.is_file():
        raise UsageError(f"policy template not found: {policy_file} (pass --policy-file or --policy-name)")
    account = aws.client("sts", region).get_caller_identity()["Account"]
    document = policy_file.read_text().replace("AWS_REGION", region).replace("AWS_ACCOUNT_ID", account)
    iot.create_policy(policyName=name, policyDocument=document)
    return name


def wait_for_task(iot: Any, task_id: str, timeout: float) -> dict[str, Any]:
    """Poll DescribeThingRegistrationTask (backoff 1 s doubling to 10 s) until the task ends; raises ``ToolError``."""
    deadline, delay = time.monotonic() + timeout, POLL_FIRST
    while True:
        task = iot.describe_thing_registration_task(taskId=task_id)
        if task["status"] not in ("InProgress", "Cancelling"):
            return dict(task)
        if time.monotonic() + delay > deadline:
            raise ToolError(f"registration task {task_id} still {task['status']} after {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX)


def download_reports(iot: Any, task_id: str, kind: str, target: Path) -> int:
    """Concatenate every report file of ``kind`` (RESULTS or ERRORS) into ``target``; returns the line count."""
    lines: list[str] = []
    token = None
    while True:
        page = iot.list_thing_registration_task_reports(
            taskId=task_id, reportType=kind, **({"nextToken": token} if token else {})
        )
        for link in page.get("resourceLinks", []):
            with urllib.request.urlopen(link, timeout=60) as response:  # presigned S3 URL from AWS IoT
                lines += [line for line in response.read().decode().splitlines() if line.strip()]
        token = page.get("nextToken")
        if not token:
            break
    target.write_text("".join(f"{line}\n" for line in lines))
    return len(lines)


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if not THING_NAME.match(args.base_thingname):
        raise UsageError(f"base_thingname may hold only letters, digits, ':', '_' and '-': {args.base_thingname!r}")
    bucket, role = toolsrc("S3_BUCKET"), toolsrc("ARN_IOT_PROVISIONING_ROLE")
    region = default_region()
    iot, s3 = aws.client("iot", region), aws.client("s3", region)
    started = datetime.datetime.now(datetime.UTC)
    directory = Path(f"{args.base_thingname}-{started:%Y-%m-%d_%H-%M-%S}")
    names = [f"{args.base_thingname}{i}" for i in range(1, args.num_things + 1)]

    clock = time.perf_counter()
    csrs = generate_batch(names, directory, "rsa" if args.rsa else "ec", args.workers)
    keygen_seconds = time.perf_counter() - clock
    rate = len(names) / keygen_seconds
    print(f"key generation: {len(names)} keys and CSRs in {keygen_seconds:.1f} s ({rate:,.0f}/s, "
          f"{rate / ARCHIVED_RATE:,.0f}x the archived {ARCHIVED_RATE:.1f}/s)", flush=True)  # fmt: skip

    if args.template:
        body = args.template.read_text()
    elif args.policy_name:
        body = template_body(args.policy_name)
    else:
        body = template_body(_ensure_policy(iot, region, f"{args.base_thingname}_Policy", args.policy_file))
    input_file = directory / f"bulk-{started:%Y-%m-%d_%H-%M-%S}.json"
    input_file.write_text(
        "".join(
            json.dumps({"ThingName": name, "SerialNumber": str(i), "CSR": csr}) + "\n"
            for i, (name, csr) in enumerate(zip(names, csrs, strict=True), start=1)
        )
    )
    key = f"bulk-registration/{directory.name}/{input_file.name}"
    s3.upload_file(str(input_file), bucket, key)

    clock = time.perf_counter()
    task_id = iot.start_thing_registration_task(
        templateBody=body, inputFileBucket=bucket, inputFileKey=key, roleArn=role
    )["taskId"]
    print(f"registration task {task_id} started", flush=True)
    task = wait_for_task(iot, task_id, args.timeout)
    results = download_reports(iot, task_id, "RESULTS", directory / "results.json")
    errors = download_reports(iot, task_id, "ERRORS", directory / "errors.json")
    bulk_seconds = time.perf_counter() - clock
    write_certificates(directory / "results.json", directory)
    ended = datetime.datetime.now(datetime.UTC)
    print(f"base thing name: {args.base_thingname} number of things: {len(names)} directory: {directory}")
    print(f"start: {started:%Y-%m-%d %H:%M:%S} end: {ended:%Y-%m-%d %H:%M:%S} UTC")
    print(f"time to generate keys and CSRs: {keygen_seconds:.1f} s; time for bulk provisioning: {bulk_seconds:.1f} s")
    print(f"task status: {task['status']} registered: {results} errors: {errors}")
    if task["status"] != "Completed" or errors or results != len(names):
        print(f"{PROG}: error: task {task['status']} {task.get('message', '')}; see {directory}/errors.json",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
