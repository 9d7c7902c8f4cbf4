"""Removes one deployment: its stacks, its global-table replicas, its buckets; reports whatever is left.

Order matters: the secondary stack (whose stream mapping reads the replica) and the health checkers go first,
then the primary stack, whose global table takes its replica with it, then the artifact buckets with every
object version. Only what carries the deployment's names is touched, and a bucket only if it carries the
deployment's tag. Every failure is collected with CloudFormation's reasons instead of being hidden, and with a
deadline the uninstaller stops waiting in time and says what is still being deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from iot_dr.core import aws
from iot_dr.core.aws import error_code

if TYPE_CHECKING:
    from types_boto3_cloudformation import CloudFormationClient
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

# Tag on every bucket and stack of a deployment; a bucket is deleted only if it carries its deployment's value.
DEPLOYMENT_TAG = "IoTDRDeployment"
_DELETE_BATCH = 1000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Deployment:
    """One deployment's regions and the names of everything it creates (the guide's naming)."""

    primary_region: str
    secondary_region: str
    stack_postfix: str
    bucket_suffix: str

    def bucket(self, region: str) -> str:
        """The deployment's artifact bucket in ``region``: ``iot-dr-<primary|secondary>-<stack UUID>``."""
        role = "primary" if region == self.primary_region else "secondary"
        return f"iot-dr-{role}-{self.bucket_suffix}"

    @property
    def regions(self) -> tuple[str, str]:
        """(primary, secondary) region names."""
        return self.primary_region, self.secondary_region

    @property
    def table_name(self) -> str:
        """The global table's name, ``IoTDRGlobalTable<postfix>``."""
        return f"IoTDRGlobalTable{self.stack_postfix}"

    @property
    def primary_stack(self) -> str:
        """The primary region's stack name, ``IoTDRPrimary<postfix>``."""
        return f"IoTDRPrimary{self.stack_postfix}"

    @property
    def secondary_stack(self) -> str:
        """The secondary region's stack name, ``IoTDRSecondary<postfix>``."""
        return f"IoTDRSecondary{self.stack_postfix}"

    @property
    def health_checker_stack(self) -> str:
        """The health checker's stack name (one per region), ``R53HealthChecker<postfix>``."""
        return f"R53HealthChecker{self.stack_postfix}"


def stack_status(cloudformation: CloudFormationClient, name: str) -> str | None:
    """The stack's status, or None when there is no such stack (deleted stacks count as absent)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as err:
        if error_code(err) == "ValidationError" and "does not exist" in str(err):
            return None
        raise
    live = [s["StackStatus"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


def failure_reasons(cloudformation: CloudFormationClient, name: str) -> str:
    """The reasons CloudFormation gave for failed resources, newest first, for an actionable message."""
    try:
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError as err:
        return str(err)
    reasons = [
        f"{e.get('LogicalResourceId', '')}: {e['ResourceStatusReason']}"
        for e in events
        if e["ResourceStatus"].endswith("_FAILED") and e.get("ResourceStatusReason")
    ]
    return "; ".join(reasons) or "no failure reason recorded"


@dataclass
class UninstallReport:
    """What was removed, what could not be removed (with why), and what was still being deleted at the deadline."""

    deleted: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing failed and nothing is still being deleted."""
        return not self.failures and not self.pending

    def summary(self) -> str:
        """One line for the custom resource's reason: the failures, what is still deleting, or how many resources were
        removed."""
        parts = []
        if self.failures:
            parts.append("failed: " + "; ".join(self.failures))
        if self.pending:
            parts.append("still deleting: " + "; ".join(self.pending))
        return " | ".join(parts) or f"removed {len(self.deleted)} resources"


@dataclass(frozen=True)
class _Clock:
    deadline: float | None
    poll: float

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def sleep(self) -> None:
        remaining = self.poll if self.deadline is None else min(self.poll, self.deadline - time.monotonic())
        if remaining > 0:
            time.sleep(remaining)


def _checker_things(config: Deployment) -> dict[str, str]:
    """Health-checker thing per region, read from the stacks before they go, to check they really went."""
    things = {}
    for region in config.regions:
        cloudformation = aws.client("cloudformation", region)
        if stack_status(cloudformation, config.health_checker_stack) is None:
            continue
        stack = cloudformation.describe_stacks(StackName=config.health_checker_stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if "CheckerThingName" in outputs:
            things[region] = outputs["CheckerThingName"]
    return things


def _delete_stacks(
    stacks: Iterable[tuple[str, str]], clock: _Clock, report: UninstallReport, progress: Progress
) -> bool:
    """Request every deletion, then wait for all; True when every stack is gone."""
    waiting = []
    for region, name in stacks:
        cloudformation = aws.client("cloudformation", region)
        status = stack_status(cloudformation, name)
        if status is None:
            continue
        progress(f"deleting stack {name} in {region} ({status})")
        try:
            cloudformation.delete_stack(StackName=name)
        except ClientError as err:
            report.failures.append(f"stack {name} in {region}: {err}")
            continue
        waiting.append((region, name))
    all_gone = True
    for region, name in waiting:
        cloudformation = aws.client("cloudformation", region)
        status = stack_status(cloudformation, name)
        while status == "DELETE_IN_PROGRESS" and not clock.expired():
            clock.sleep()
            status = stack_status(cloudformation, name)
        if status is None:
            report.deleted.append(f"stack {name} in {region}")
            progress(f"stack {name} in {region} deleted")
        elif status == "DELETE_IN_PROGRESS":
            report.pending.append(f"stack {name} in {region}")
            all_gone = False
        else:
            report.failures.append(f"stack {name} in {region} is {status}: {failure_reasons(cloudformation, name)}")
            all_gone = False
    return all_gone


def _wait_table_gone(region: str, table: str, clock: _Clock, report: UninstallReport) -> bool:
    dynamodb = aws.client("dynamodb", region)
    while True:
        try:
            status = dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return True
            raise
        if status != "DELETING":
            report.failures.append(f"global table replica {table} in {region} still exists ({status})")
            return False
        if clock.expired():
            report.pending.append(f"global table replica {table} in {region}")
            return False
        clock.sleep()


def _thing_exists(region: str, thing: str) -> bool:
    try:
        aws.client("iot", region).describe_thing(thingName=thing)
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            return False
        raise
    return True


def _check_checker_identities(config: Deployment, things: dict[str, str], report: UninstallReport) -> None:
    """The health-checker stacks delete their identities; check that their things are gone.

    Replication never copies a checker's identity (``iot_dr.health.checker_identity``), so nothing of it is left in
    the other region for the uninstaller to remove (and it holds no right over certificates to do so).
    """
    for region, thing in things.items():
        if _thing_exists(region, thing):
            report.failures.append(f"health-checker thing {thing} in {region} still exists")
        else:
            report.deleted.append(f"health-checker thing {thing} in {region}")


def delete_bucket(region: str, bucket: str, deployment: str) -> str | None:
    """Empty (every version and delete marker) and delete a bucket of this deployment; the reason if not."""
    s3 = aws.client("s3", region)
    try:
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except ClientError as err:
        if error_code(err) == "NoSuchBucket":
            return None
        if error_code(err) != "NoSuchTagSet":
            raise
        tags = {}
    if tags.get(DEPLOYMENT_TAG) != deployment:
        return f"bucket {bucket} is not tagged {DEPLOYMENT_TAG}={deployment}; left untouched"
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions: list[ObjectIdentifierTypeDef] = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(versions), _DELETE_BATCH):
            response = s3.delete_objects(
                Bucket=bucket, Delete={"Objects": versions[start : start + _DELETE_BATCH], "Quiet": True}
            )
            if response.get("Errors"):
                first, count = response["Errors"][0], len(response["Errors"])
                return f"bucket {bucket}: {count} objects not deleted ({first['Key']}: {first['Code']})"
    s3.delete_bucket(Bucket=bucket)
    return None


def uninstall(
    config: Deployment, progress: Progress, *, deadline: float | None = None, poll: float = 10.0
) -> UninstallReport:
    """Remove the deployment ``config`` names; ``deadline`` is a ``time.monotonic()`` value to stop waiting at."""
    clock = _Clock(deadline, poll)
    report = UninstallReport()
    primary, secondary = config.regions
    things = _checker_things(config)
    first_wave = [(secondary, config.secondary_stack), *((r, config.health_checker_stack) for r in config.regions)]
    if not _delete_stacks(first_wave, clock, report, progress):
        report.pending.append(f"stack {config.primary_stack} in {primary} (waits for the stacks above)")
        return report
    _check_checker_identities(config, things, report)
    if not _delete_stacks([(primary, config.primary_stack)], clock, report, progress):
        return report
    for region in config.regions:
        if _wait_table_gone(region, config.table_name, clock, report):
            report.deleted.append(f"global table replica {config.table_name} in {region}")
    for region in config.regions:
        bucket = config.bucket(region)
        try:
            problem = delete_bucket(region, bucket, config.bucket_suffix)
        except ClientError as err:
            problem = f"bucket {bucket}: {err}"
        if problem:
            report.failures.append(problem)
        else:
            report.deleted.append(f"bucket {bucket}")
            progress(f"bucket {bucket} deleted")
    return report
