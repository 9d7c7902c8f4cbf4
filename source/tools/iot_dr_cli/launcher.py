"""Deploys the solution: artifact buckets, uploads, the primary and secondary stacks.

The same code runs in CodeBuild (started by the main stack), from a workstation, and inside the local cloud,
so every local run exercises the real deployment path. It can be re-run: existing buckets are reused and
existing stacks are updated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iot_dr import aws
from iot_dr_cli.build import BuildResult

LOG = logging.getLogger(__name__)

PRIMARY_TEMPLATE = "disaster-recovery-for-aws-iot-primary-region.template"
SECONDARY_TEMPLATE = "disaster-recovery-for-aws-iot-secondary-region.template"
MAX_TEMPLATE_BODY = 51_200

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LaunchConfig:
    primary_region: str
    secondary_region: str
    stack_postfix: str
    bucket_suffix: str
    primary_parameters: Mapping[str, str] = field(default_factory=dict)
    secondary_parameters: Mapping[str, str] = field(default_factory=dict)

    def bucket(self, region: str) -> str:
        role = "primary" if region == self.primary_region else "secondary"
        return f"iot-dr-{role}-{self.bucket_suffix}"

    @property
    def table_name(self) -> str:
        return f"IoTDRGlobalTable{self.stack_postfix}"

    @property
    def primary_stack(self) -> str:
        return f"IoTDRPrimary{self.stack_postfix}"

    @property
    def secondary_stack(self) -> str:
        return f"IoTDRSecondary{self.stack_postfix}"


@dataclass(frozen=True)
class LaunchResult:
    primary_outputs: dict[str, str]
    secondary_outputs: dict[str, str]
    replica_stream_arn: str


def ensure_bucket(region: str, bucket: str) -> None:
    """An encrypted, versioned, private bucket that accepts TLS requests only."""
    s3 = aws.client("s3", region)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
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
    s3 = aws.client("s3", region)
    for artifact in build.artifacts:
        s3.upload_file(str(artifact.path), bucket, f"{build.prefix}{artifact.name}")


def deploy_stack(
    region: str, name: str, template: Path, template_url: str, parameters: Mapping[str, str], progress: Progress
) -> dict[str, str]:
    """Create or update a stack and wait for it; returns its outputs."""
    cloudformation = aws.client("cloudformation", region)
    body = template.read_text()
    source = {"TemplateBody": body} if len(body) <= MAX_TEMPLATE_BODY else {"TemplateURL": template_url}
    request = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(parameters.items())],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        "Tags": [{"Key": "Solution", "Value": "IoTDR"}],
        **source,
    }
    if _stack_exists(cloudformation, name):
        progress(f"updating stack {name} in {region}")
        try:
            cloudformation.update_stack(**request)
        except Exception as err:
            if "No updates are to be performed" not in str(err):
                raise
        else:
            cloudformation.get_waiter("stack_update_complete").wait(StackName=name)
    else:
        progress(f"creating stack {name} in {region}")
        cloudformation.create_stack(**request, OnFailure="DELETE")
        cloudformation.get_waiter("stack_create_complete").wait(StackName=name)
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    progress(f"stack {name} in {region}: {stack['StackStatus']}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _stack_exists(cloudformation: Any, name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except Exception as err:
        if "does not exist" in str(err):
            return False
        raise
    return any(s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)


def launch(config: LaunchConfig, build: BuildResult, progress: Progress) -> LaunchResult:
    artifacts = build.by_name()
    for region in (config.primary_region, config.secondary_region):
        bucket = config.bucket(region)
        progress(f"uploading {len(build.artifacts)} artifacts to s3://{bucket}/{build.prefix}")
        ensure_bucket(region, bucket)
        upload(region, bucket, build)
    primary = config.primary_region
    primary_outputs = deploy_stack(
        primary,
        config.primary_stack,
        artifacts[PRIMARY_TEMPLATE].path,
        f"https://{config.bucket(primary)}.s3.{primary}.amazonaws.com/{build.prefix}{PRIMARY_TEMPLATE}",
        {
            "GlobalDynamoDBTableName": config.table_name,
            "SecondaryRegion": config.secondary_region,
            "ArtifactBucket": config.bucket(primary),
            "ArtifactPrefix": build.prefix,
            **config.primary_parameters,
        },
        progress,
    )
    secondary = config.secondary_region
    table = aws.client("dynamodb", secondary).describe_table(TableName=config.table_name)["Table"]
    stream_arn = table["LatestStreamArn"]
    progress(f"global table {config.table_name} has a replica in {secondary}")
    secondary_outputs = deploy_stack(
        secondary,
        config.secondary_stack,
        artifacts[SECONDARY_TEMPLATE].path,
        f"https://{config.bucket(secondary)}.s3.{secondary}.amazonaws.com/{build.prefix}{SECONDARY_TEMPLATE}",
        {
            "GlobalDynamoDBTableName": config.table_name,
            "ReplicationTableStreamArn": stream_arn,
            "PrimaryRegion": primary,
            "ArtifactBucket": config.bucket(secondary),
            "ArtifactPrefix": build.prefix,
            **config.secondary_parameters,
        },
        progress,
    )
    return LaunchResult(primary_outputs, secondary_outputs, stream_arn)
