"""Deploys the solution: artifact buckets, uploads, the regional stacks and the tools' ``toolsrc``.

The same code runs in CodeBuild (started by the main stack), from a workstation, and inside the local cloud,
so every local run exercises the real deployment path. It can be re-run: existing buckets are reused and
existing stacks are updated. Everything it creates carries the deployment's names (stack postfix, bucket
suffix), so the uninstaller can find exactly that and nothing else.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from iot_dr.core import aws
from iot_dr.core.aws import error_code
from iot_dr.deploy.uninstall import DEPLOYMENT_TAG, Deployment, Progress, failure_reasons, stack_status
from iot_dr_cli.build import (
    REPO_ROOT,
    SOLUTION_NAME,
    BuildResult,
    PackagingError,
    build_artifacts,
    read_artifacts,
)
from iot_dr_cli.secret_scan import SecretFound, refuse_secret_text, refuse_secrets
from iot_dr_cli.tooling import ToolError, different_regions, existing_folder, known_region, run

PRIMARY_TEMPLATE = "disaster-recovery-for-aws-iot-primary-region.template"
SECONDARY_TEMPLATE = "disaster-recovery-for-aws-iot-secondary-region.template"
HEALTH_CHECKER_TEMPLATE = "disaster-recovery-for-aws-iot-r53-health-checker.template"
MAX_TEMPLATE_BODY = 51_200
SOLUTION_TAG = {"Key": "Solution", "Value": "IoTDR"}
TOOLS_PREFIX = "tools/"
NOTEBOOKS_PREFIX = "jupyter/"
LAMBDA_SOURCES_PREFIX = "lambda/"
TOOLSRC_KEY = f"{TOOLS_PREFIX}toolsrc"
_SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


PROG = "python -m iot_dr_cli.launcher"


class LaunchError(Exception):
    """A stack or bucket could not be deployed; the message says which and why."""


@dataclass(frozen=True)
class LaunchConfig(Deployment):
    """One deployment (its regions and names) and the parameters its stacks get."""

    primary_parameters: Mapping[str, str] = field(default_factory=dict)
    secondary_parameters: Mapping[str, str] = field(default_factory=dict)
    health_checker_parameters: Mapping[str, str] = field(default_factory=dict)
    deploy_health_checkers: bool = True
    # CloudFormation service role for the regional stacks; without it CloudFormation uses the caller's rights.
    deployment_role_arn: str | None = None


@dataclass(frozen=True)
class SolutionFiles:
    """Files for operators, uploaded next to the artifacts in the primary bucket (guide: ToolsS3Url etc.)."""

    tools: Path | None = REPO_ROOT / "source" / "tools"
    # The layer package goes next to the tools too: the Python tools import it, so they run from the synced folder.
    tools_layer: Path | None = REPO_ROOT / "source" / "layer"
    notebooks: Path | None = REPO_ROOT / "source" / "jupyter"
    lambda_sources: Path | None = REPO_ROOT / "source" / "lambda"


@dataclass(frozen=True)
class LaunchResult:
    primary_outputs: dict[str, str]
    secondary_outputs: dict[str, str]
    replica_stream_arn: str
    health_checker_outputs: dict[str, dict[str, str]]
    toolsrc: str


def ensure_bucket(region: str, bucket: str, deployment: str) -> None:
    """An encrypted, versioned, private bucket that accepts TLS requests only, tagged with its deployment.

    A bucket of that name that this account owns but another deployment created is refused, so the
    uninstaller of this deployment can never be pointed at someone else's data.
    """
    s3 = aws.client("s3", region)
    try:
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except ClientError as err:
        if error_code(err) == "NoSuchBucket":
            location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=bucket, **location)
            tags = {}
        elif error_code(err) == "NoSuchTagSet":
            tags = {}
        else:
            raise
    if tags.get(DEPLOYMENT_TAG, deployment) != deployment:
        raise LaunchError(f"bucket {bucket} belongs to deployment {tags[DEPLOYMENT_TAG]}, not {deployment}")
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [SOLUTION_TAG, {"Key": DEPLOYMENT_TAG, "Value": deployment}]}
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(_tls_only_policy(bucket)))


def _tls_only_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def upload(region: str, bucket: str, build: BuildResult) -> None:
    refuse_secrets(artifact.path for artifact in build.artifacts)
    s3 = aws.client("s3", region)
    for artifact in build.artifacts:
        s3.upload_file(str(artifact.path), bucket, f"{build.prefix}{artifact.name}")


def _files_under(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not _SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
            yield relative.as_posix(), path


def upload_solution_files(region: str, bucket: str, files: SolutionFiles) -> int:
    """Tools, notebooks and Lambda sources under the prefixes the main stack's outputs link to."""
    uploads = [
        (f"{prefix}{key}", path)
        for prefix, root in (
            (TOOLS_PREFIX, files.tools),
            (TOOLS_PREFIX, files.tools_layer),
            (NOTEBOOKS_PREFIX, files.notebooks),
            (LAMBDA_SOURCES_PREFIX, files.lambda_sources),
        )
        if root is not None and root.is_dir()
        for key, path in _files_under(root)
    ]
    # Every file is checked before the first upload, so a refused launch leaves nothing of it in the bucket.
    refuse_secrets(path for _, path in uploads)
    s3 = aws.client("s3", region)
    for key, path in uploads:
        s3.upload_file(str(path), bucket, key)
    return len(uploads)


def deploy_stack(
    region: str,
    name: str,
    template: Path,
    template_url: str,
    parameters: Mapping[str, str],
    progress: Progress,
    *,
    role_arn: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Create or update a stack and wait for it; returns its outputs or raises ``LaunchError``."""
    cloudformation = aws.client("cloudformation", region)
    body = template.read_text()
    source = {"TemplateBody": body} if len(body) <= MAX_TEMPLATE_BODY else {"TemplateURL": template_url}
    request: dict[str, Any] = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(parameters.items())],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        "Tags": [SOLUTION_TAG, *({"Key": k, "Value": v} for k, v in sorted((tags or {}).items()))],
        **source,
    }
    if role_arn:
        request["RoleARN"] = role_arn
    status = stack_status(cloudformation, name)
    started = time.monotonic()
    if status is None:
        progress(f"creating stack {name} in {region}")
        cloudformation.create_stack(**request, OnFailure="DELETE")
    elif status.endswith("_IN_PROGRESS") or status in ("ROLLBACK_COMPLETE", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"):
        raise LaunchError(f"stack {name} in {region} is {status}; it cannot be updated now")
    else:
        progress(f"updating stack {name} in {region}")
        try:
            cloudformation.update_stack(**request)
        except ClientError as err:
            if "No updates are to be performed" not in str(err):
                raise
            progress(f"stack {name} in {region} is up to date")
    final = wait_for_stack(cloudformation, name, progress)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise LaunchError(f"stack {name} in {region} ended {final}: {failure_reasons(cloudformation, name)}")
    progress(f"stack {name} in {region}: {final} after {time.monotonic() - started:.0f} s")
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def wait_for_stack(cloudformation: Any, name: str, progress: Progress, delay: float = 10.0) -> str | None:
    """Poll until the stack leaves every *_IN_PROGRESS status, reporting each resource event once."""
    seen: set[str] = set()
    while True:
        status = stack_status(cloudformation, name)
        for event in _new_events(cloudformation, name, seen):
            reason = f" ({event['ResourceStatusReason']})" if event.get("ResourceStatusReason") else ""
            progress(f"  {name} {event.get('LogicalResourceId', '')} {event['ResourceStatus']}{reason}")
        if status is None or not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(delay)


def _new_events(cloudformation: Any, name: str, seen: set[str]) -> list[dict[str, Any]]:
    try:
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError as err:
        if "does not exist" in str(err):
            return []
        raise
    fresh = [e for e in events if e["EventId"] not in seen]
    seen.update(e["EventId"] for e in fresh)
    return sorted(fresh, key=lambda e: e["Timestamp"])


def _iot_endpoint(region: str) -> str:
    return str(aws.client("iot", region).describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"])


def toolsrc(config: LaunchConfig, endpoints: Mapping[str, str], primary_outputs: Mapping[str, str]) -> str:
    """The environment the guide's tools expect, as ``export`` lines a shell can source."""
    variables = {
        "IOT_ENDPOINT_PRIMARY": endpoints[config.primary_region],
        "IOT_ENDPOINT_SECONDARY": endpoints[config.secondary_region],
        "REGION": config.primary_region,
        "S3_BUCKET": config.bucket(config.primary_region),
        "DYNAMODB_GLOBAL_TABLE": config.table_name,
        "PRIMARY_REGION": config.primary_region,
        "SECONDARY_REGION": config.secondary_region,
    }
    if "IoTBulkProvisioningRoleArn" in primary_outputs:
        variables["ARN_IOT_PROVISIONING_ROLE"] = primary_outputs["IoTBulkProvisioningRoleArn"]
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())


def _template_url(config: LaunchConfig, region: str, build: BuildResult, template: str) -> str:
    return f"https://{config.bucket(region)}.s3.{region}.amazonaws.com/{build.prefix}{template}"


def launch(
    config: LaunchConfig, build: BuildResult, progress: Progress, files: SolutionFiles | None = None
) -> LaunchResult:
    """Deploy (or update) everything: buckets, uploads, primary, secondary, health checkers, toolsrc."""
    artifacts = build.by_name()
    primary, secondary = config.regions
    tags = {DEPLOYMENT_TAG: config.stack_postfix}
    for region in config.regions:
        bucket = config.bucket(region)
        progress(f"uploading {len(build.artifacts)} artifacts to s3://{bucket}/{build.prefix}")
        ensure_bucket(region, bucket, config.bucket_suffix)
        upload(region, bucket, build)
    count = upload_solution_files(primary, config.bucket(primary), files or SolutionFiles())
    progress(f"uploaded {count} tool, notebook and Lambda source files to s3://{config.bucket(primary)}/")

    primary_outputs = deploy_stack(
        primary,
        config.primary_stack,
        artifacts[PRIMARY_TEMPLATE].path,
        _template_url(config, primary, build, PRIMARY_TEMPLATE),
        {
            "GlobalDynamoDBTableName": config.table_name,
            "SecondaryRegion": secondary,
            "ArtifactBucket": config.bucket(primary),
            "ArtifactPrefix": build.prefix,
            **config.primary_parameters,
        },
        progress,
        role_arn=config.deployment_role_arn,
        tags=tags,
    )
    table = aws.client("dynamodb", secondary).describe_table(TableName=config.table_name)["Table"]
    stream_arn = table["LatestStreamArn"]
    progress(f"global table {config.table_name} has its replica in {secondary}")
    secondary_outputs = deploy_stack(
        secondary,
        config.secondary_stack,
        artifacts[SECONDARY_TEMPLATE].path,
        _template_url(config, secondary, build, SECONDARY_TEMPLATE),
        {
            "GlobalDynamoDBTableName": config.table_name,
            "ReplicationTableStreamArn": stream_arn,
            "PrimaryRegion": primary,
            "ArtifactBucket": config.bucket(secondary),
            "ArtifactPrefix": build.prefix,
            **config.secondary_parameters,
        },
        progress,
        role_arn=config.deployment_role_arn,
        tags=tags,
    )
    health_checker_outputs = {}
    if config.deploy_health_checkers:
        for region, role, paired in ((primary, "PRIMARY", secondary), (secondary, "SECONDARY", primary)):
            health_checker_outputs[region] = deploy_stack(
                region,
                config.health_checker_stack,
                artifacts[HEALTH_CHECKER_TEMPLATE].path,
                _template_url(config, region, build, HEALTH_CHECKER_TEMPLATE),
                {
                    "FailoverRole": role,
                    "PairedRegion": paired,
                    "ArtifactBucket": config.bucket(region),
                    "ArtifactPrefix": build.prefix,
                    **config.health_checker_parameters,
                },
                progress,
                role_arn=config.deployment_role_arn,
                tags=tags,
            )
    endpoints = {region: _iot_endpoint(region) for region in config.regions}
    rc = toolsrc(config, endpoints, primary_outputs)
    refuse_secret_text(TOOLSRC_KEY, rc)
    aws.client("s3", primary).put_object(
        Bucket=config.bucket(primary), Key=TOOLSRC_KEY, Body=rc.encode(), ContentType="text/plain"
    )
    progress(f"wrote s3://{config.bucket(primary)}/{TOOLSRC_KEY}")
    return LaunchResult(primary_outputs, secondary_outputs, stream_arn, health_checker_outputs, rc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Deploy or update Disaster Recovery for AWS IoT in two regions (what the CodeBuild project runs).",
    )
    parser.add_argument("--primary-region", type=known_region, required=True)
    parser.add_argument("--secondary-region", type=known_region, required=True)
    parser.add_argument("--stack-postfix", default=time.strftime("%Y%m%d%H%M%S"), help="default: the time now")
    parser.add_argument("--bucket-suffix", required=True, help="buckets are iot-dr-primary|secondary-<suffix>")
    parser.add_argument(
        "--artifacts",
        type=existing_folder,
        help="directory of an earlier build, such as the artifacts/ of build-s3-dist.sh's iot-dr-solution.zip "
        "(default: build now, without the health checker's vendored IoT SDK)",
    )
    parser.add_argument("--artifact-prefix", help="key prefix of that build (default: <solution-name>/<version>/)")
    parser.add_argument("--version", default="v2.0.0", help="version of the build made now")
    parser.add_argument("--solution-name", default=SOLUTION_NAME)
    parser.add_argument("--create-r53-health-check", choices=["yes", "no"], default="yes")
    parser.add_argument("--hosted-zone-id", default="")
    parser.add_argument("--record-name", default="")
    parser.add_argument("--health-check-mode", choices=["https-secret", "cloudwatch-alarm"], default="https-secret")
    parser.add_argument(
        "--rate-limit-per-ip",
        type=int,
        choices=[0, 100, 200, 500, 1000],
        default=100,
        help="requests one address may send to a health checker in 5 minutes (0: no AWS WAF web ACL)",
    )
    parser.add_argument("--alarm-email", default="", help="address subscribed to every stack's alarm topic")
    parser.add_argument("--deployment-role-arn", help="CloudFormation service role for the regional stacks")
    return parser


def config_from_args(args: argparse.Namespace) -> LaunchConfig:
    return LaunchConfig(
        primary_region=args.primary_region,
        secondary_region=args.secondary_region,
        stack_postfix=args.stack_postfix,
        bucket_suffix=args.bucket_suffix,
        primary_parameters={"AlarmEmail": args.alarm_email},
        secondary_parameters={"AlarmEmail": args.alarm_email},
        health_checker_parameters={
            "CreateRoute53HealthCheck": args.create_r53_health_check,
            "HealthCheckMode": args.health_check_mode,
            "RateLimitPerIp": str(args.rate_limit_per_ip),
            "AlarmEmail": args.alarm_email,
            "HostedZoneId": args.hosted_zone_id,
            "RecordName": args.record_name,
        },
        deployment_role_arn=args.deployment_role_arn or None,
    )


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None, progress: Progress = _print) -> int:
    """Command-line entry; exit code 1 with the reason when any part of the deployment fails, 2 for bad arguments or
    endpoint settings (``iot_dr_cli.tooling``)."""
    return run(PROG, lambda arguments: _main(arguments, progress), argv)


def _main(argv: Sequence[str], progress: Progress) -> int:
    args = build_parser().parse_args(argv)
    different_regions(args.primary_region, args.secondary_region)
    config = config_from_args(args)
    try:
        if args.artifacts:
            build = read_artifacts(args.artifacts, args.artifact_prefix or f"{args.solution_name}/{args.version}/")
        else:
            output = Path(tempfile.mkdtemp(prefix="iot-dr-build-"))
            build = build_artifacts(output, args.version, solution_name=args.solution_name)
        result = launch(config, build, progress)
    except (LaunchError, PackagingError, SecretFound, ClientError, OSError) as err:
        raise ToolError(" ".join(str(err).split())) from err
    progress(result.toolsrc.rstrip())
    progress(f"deployed with stack postfix {config.stack_postfix}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
