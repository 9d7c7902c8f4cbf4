"""``test-dr-deployment.py``: an end-to-end check of a deployed solution, primary -> secondary.

Checks, each with a timeout: DEVICE_REPLICATION (a device created in the primary, with certificate and policy, is
whole in the secondary), PUBSUB_PRIMARY and PUBSUB_SECONDARY (the device publishes and receives over MQTT in each
region), SHADOW_REPLICATION (a shadow update reaches the secondary) and DELETE_REPLICATION (deleting in the primary
deletes in the secondary). Prints a JSON report of PASSED/FAILED per check (also to ``--report FILE``), deletes what
it created even after a failure, and exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import iot_dr_cli
from iot_dr.core import aws
from iot_dr.core.device_policy import device_policy_json
from iot_dr.fleet.device import shadow_state
from iot_dr.fleet.drift import Region, compare_fleet
from iot_dr.fleet.removal import delete_device
from iot_dr.secondary.replicate.context import describe_or_none
from iot_dr_cli.arguments import positive
from iot_dr_cli.tooling import EXIT_FAILURE, EXIT_OK, UsageError, region_pair, run, toolsrc

PROG = "test-dr-deployment.py"
CHECKS = ("DEVICE_REPLICATION", "PUBSUB_PRIMARY", "PUBSUB_SECONDARY", "SHADOW_REPLICATION", "DELETE_REPLICATION")
MESSAGES = 3


class CheckFailed(Exception):
    """A check did not pass; the message says what was seen."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--primary-region", help="default: PRIMARY_REGION from toolsrc")
    parser.add_argument("--secondary-region", help="default: SECONDARY_REGION from toolsrc")
    parser.add_argument("--endpoint-primary", help="MQTT endpoint (default: IOT_ENDPOINT_PRIMARY from toolsrc)")
    parser.add_argument("--endpoint-secondary", help="MQTT endpoint (default: IOT_ENDPOINT_SECONDARY from toolsrc)")
    parser.add_argument("--port", type=positive, default=8883, help="MQTT port (default 8883)")
    parser.add_argument("--root-ca", help="CA of the endpoints' certificates (default: system trust store)")
    parser.add_argument("--dns-server", help="resolve the endpoints with this DNS server (host:port)")
    parser.add_argument("--timeout", type=positive, default=60, help="seconds per check (default 60)")
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write the JSON report to FILE")
    return parser


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` with backoff (0.2 s doubling to 2 s) until true; raises ``CheckFailed`` after ``timeout``."""
    deadline, delay = time.monotonic() + timeout, 0.2
    while not check():
        if time.monotonic() + delay > deadline:
            raise CheckFailed(f"{what} within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


class DeploymentTest:
    def __init__(self, args: argparse.Namespace, work_dir: Path) -> None:
        primary, secondary = region_pair(args.primary_region, args.secondary_region)
        self.primary, self.secondary = Region.limited(primary), Region.limited(secondary)
        self.endpoints = {
            "PRIMARY": toolsrc("IOT_ENDPOINT_PRIMARY", args.endpoint_primary),
            "SECONDARY": toolsrc("IOT_ENDPOINT_SECONDARY", args.endpoint_secondary),
        }
        self.args = args
        self.thing = f"iot-dr-test-{uuid.uuid4().hex[:12]}"
        self.policy = f"{self.thing}-policy"
        self.cert_path, self.key_path = work_dir / "cert.pem", work_dir / "private.key"
        self.report: dict[str, str] = dict.fromkeys(CHECKS, "NOT RUN")
        self.reasons: dict[str, str] = {}

    def _policy_document(self) -> str:
        account = aws.client("sts", self.primary.name).get_caller_identity()["Account"]
        return device_policy_json(f"arn:aws:iot:{self.primary.name}:{account}", self.thing, [f"dr/{self.thing}"])

    def device_replication(self) -> None:
        iot = self.primary.iot
        iot.create_policy(policyName=self.policy, policyDocument=self._policy_document())
        iot.create_thing(thingName=self.thing)
        created = iot.create_keys_and_certificate(setAsActive=True)
        self.cert_path.write_text(created["certificatePem"])
        self.key_path.touch(mode=0o600)
        self.key_path.write_text(created["keyPair"]["PrivateKey"])
        iot.attach_policy(policyName=self.policy, target=created["certificateArn"])
        iot.attach_thing_principal(thingName=self.thing, principal=created["certificateArn"])
        [drift] = compare_fleet(self.primary, self.secondary, [self.thing], shadows=False, wait=self.args.timeout)
        if not drift.in_sync:
            fields = drift.error or ", ".join(d.field for d in drift.differences)
            raise CheckFailed(f"device not replicated whole within {self.args.timeout} s: {fields}")

    def pubsub(self, role: str) -> None:
        argv = [
            "--endpoint", self.endpoints[role], "--port", str(self.args.port),
            "--cert", str(self.cert_path), "--key", str(self.key_path),
            "--client-id", self.thing, "--topic", f"dr/{self.thing}",
            "--count", str(MESSAGES), "--interval", "0.2",
        ]  # fmt: skip
        argv += ["--root-ca", self.args.root_ca] if self.args.root_ca else []
        argv += ["--dns-server", self.args.dns_server] if self.args.dns_server else []
        package_root = str(Path(iot_dr_cli.__file__).resolve().parents[1])
        search_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        # The client's summary is logged at INFO: whatever level the caller's environment asks for.
        environment = {**os.environ, "PYTHONPATH": search_path, "LOG_LEVEL": "INFO"}
        code = "import sys; from iot_dr_cli.pubsub import main; sys.exit(main())"
        try:
            result = subprocess.run(
                [sys.executable, "-c", code, *argv],
                capture_output=True, text=True, timeout=self.args.timeout, env=environment, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            raise CheckFailed(f"no pub/sub round trip within {self.args.timeout} s") from err
        summary = next(
            (json.loads(line)["summary"] for line in result.stdout.splitlines() if '"summary"' in line), None
        )
        if result.returncode != 0 or summary is None or summary["received"] < MESSAGES:
            detail = result.stderr.strip().splitlines()[-1:] or [f"summary {summary}"]
            raise CheckFailed(f"pub/sub exit {result.returncode}: {detail[0]}")

    def shadow_replication(self) -> None:
        pressure = uuid.uuid4().int % 1000
        payload = json.dumps({"state": {"reported": {"pressure": pressure}}})
        self.primary.iot_data.update_thing_shadow(thingName=self.thing, payload=payload)
        expected = {"reported": {"pressure": pressure}}
        eventually(
            lambda: shadow_state(self.secondary.iot_data, self.thing, None) == expected,
            self.args.timeout,
            "the shadow update did not reach the secondary",
        )

    def delete_replication(self) -> None:
        delete_device(self.primary.iot, self.primary.iot_data, self.thing, self.args.timeout)
        eventually(
            lambda: (
                describe_or_none(self.secondary.iot.describe_thing, thingName=self.thing) is None
                and describe_or_none(self.secondary.iot.get_policy, policyName=self.policy) is None
            ),
            self.args.timeout,
            "the thing and its policy were not deleted in the secondary",
        )

    def run_checks(self) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("DEVICE_REPLICATION", self.device_replication),
            ("PUBSUB_PRIMARY", lambda: self.pubsub("PRIMARY")),
            ("PUBSUB_SECONDARY", lambda: self.pubsub("SECONDARY")),
            ("SHADOW_REPLICATION", self.shadow_replication),
            ("DELETE_REPLICATION", self.delete_replication),
        ]
        for name, step in steps:
            print(f"{name}: running", file=sys.stderr, flush=True)
            try:
                step()
            except Exception as err:  # the report names the failure; later checks still run where they can
                self.report[name] = "FAILED"
                self.reasons[name] = f"{type(err).__name__}: {err}" if not isinstance(err, CheckFailed) else str(err)
                if name == "DEVICE_REPLICATION":
                    break
            else:
                self.report[name] = "PASSED"

    def cleanup(self) -> None:
        """Delete what this run created in the primary (the replication deletes it in the secondary)."""
        delete_device(self.primary.iot, self.primary.iot_data, self.thing, self.args.timeout)
        if describe_or_none(self.primary.iot.get_policy, policyName=self.policy) is not None:
            for target in self.primary.iot.list_targets_for_policy(policyName=self.policy).get("targets", []):
                self.primary.iot.detach_policy(policyName=self.policy, target=target)
            self.primary.iot.delete_policy(policyName=self.policy)


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.root_ca and not Path(args.root_ca).is_file():
        raise UsageError(f"--root-ca: file not found: {args.root_ca}")
    with tempfile.TemporaryDirectory(prefix="iot-dr-test-") as work_dir:
        test = DeploymentTest(args, Path(work_dir))
        try:
            test.run_checks()
        finally:
            try:
                test.cleanup()
            except Exception as err:  # reported; the check results stand
                test.reasons["CLEANUP"] = f"{type(err).__name__}: {err}"
            report = {"THING": test.thing, "TESTS": test.report, "FAILURES": test.reasons}
            text = json.dumps(report, indent=2)
            print(text, flush=True)
            if args.report:
                args.report.write_text(text + "\n")
    passed = all(result == "PASSED" for result in test.report.values()) and "CLEANUP" not in test.reasons
    return EXIT_OK if passed else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
