"""The main stack's custom resource answers CloudFormation exactly once, whatever happens.

Requests are CloudFormation custom-resource events (documented shape) with a real pre-signed S3 URL of the
local cloud as ResponseURL; the response bucket is versioned, so every PUT the handler makes is counted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iot_dr.core import aws
from iot_dr.core.event_types import REGISTRY_EVENT_CONFIGURATIONS
from iot_dr.deploy.launch_solution import OUTPUT_KEYS, LaunchSettings, deployment_of, handle_event
from iot_dr_cli import launcher
from iot_dr_cli.build import build_artifacts
from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud

PRIMARY, SECONDARY = "us-east-1", "us-west-2"
PROJECT = "IoTDRLaunchSolution"
RESPONSES = "cfn-responses"
FUNCTION_ARN = f"arn:aws:lambda:{PRIMARY}:{ACCOUNT_ID}:function:iot-dr-launch-solution"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    local = LocalCloud(PRIMARY, SECONDARY)
    local.start()
    try:
        local.prepare_account()
        local.client("codebuild", PRIMARY).create_project(
            name=PROJECT,
            source={
                "type": "S3",
                "location": "solutions-us-east-1/disaster-recovery-for-aws-iot/v2.0.0/iot-dr-solution.zip",
            },
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "LINUX_CONTAINER",
                "image": "aws/codebuild/standard:7.0",
                "computeType": "BUILD_GENERAL1_SMALL",
            },
            serviceRole=f"arn:aws:iam::{ACCOUNT_ID}:role/codebuild",
        )
        s3 = local.client("s3", PRIMARY)
        s3.create_bucket(Bucket=RESPONSES)
        s3.put_bucket_versioning(Bucket=RESPONSES, VersioningConfiguration={"Status": "Enabled"})
        yield local
    finally:
        local.stop()


class Context:
    """The Lambda context fields the custom resource reads."""

    log_stream_name = "2026/01/01/[$LATEST]stream"
    invoked_function_arn = FUNCTION_ARN

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class SlowCodeBuild:
    """The real CodeBuild client of the local cloud, slowed down so the function runs into its timeout."""

    def __init__(self, delay: float) -> None:
        self._client = aws.client("codebuild", PRIMARY)
        self._delay = delay

    def start_build(self, **request: Any) -> Any:
        time.sleep(self._delay)
        return self._client.start_build(**request)


def event(cloud: LocalCloud, request_type: str, properties: dict[str, str], **extra: str) -> dict[str, Any]:
    stack_uuid = str(uuid.uuid4())
    key = f"{request_type}-{uuid.uuid4()}"
    url = cloud.client("s3", PRIMARY).generate_presigned_url(
        "put_object", Params={"Bucket": RESPONSES, "Key": key}, ExpiresIn=600
    )
    return {
        "RequestType": request_type,
        "ServiceToken": FUNCTION_ARN,
        "ResponseURL": url,
        "StackId": f"arn:aws:cloudformation:{PRIMARY}:{ACCOUNT_ID}:stack/IoTDRSolution/{stack_uuid}",
        "RequestId": str(uuid.uuid4()),
        "ResourceType": "Custom::LaunchSolution",
        "LogicalResourceId": "LaunchSolution",
        "ResourceProperties": {"ServiceToken": FUNCTION_ARN, **properties},
        **extra,
    }


def responses(cloud: LocalCloud, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every response PUT to the request's pre-signed URL, oldest first."""
    key = request["ResponseURL"].split("?")[0].rsplit("/", 1)[-1]
    s3 = cloud.client("s3", PRIMARY)
    versions = s3.list_object_versions(Bucket=RESPONSES, Prefix=key).get("Versions", [])
    return [
        json.loads(s3.get_object(Bucket=RESPONSES, Key=key, VersionId=v["VersionId"])["Body"].read())
        for v in sorted(versions, key=lambda v: v["LastModified"])
    ]


def builds(cloud: LocalCloud) -> list[str]:
    return list(cloud.client("codebuild", PRIMARY).list_builds_for_project(projectName=PROJECT)["ids"])


REGIONS = {"PrimaryRegion": PRIMARY, "SecondaryRegion": SECONDARY, "CreateR53HealthCheck": "yes"}


def run(request: dict[str, Any], seconds: float = 900, client: Any = aws.client) -> None:
    handle_event(request, Context(seconds), LaunchSettings(PROJECT), client, PRIMARY)


def test_create_checks_prerequisites_starts_the_build_and_answers_success_once(cloud: LocalCloud) -> None:
    started_before = len(builds(cloud))
    request = event(cloud, "Create", REGIONS)

    run(request)

    (answer,) = responses(cloud, request)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    deployment = deployment_of(answer["PhysicalResourceId"], request["StackId"])
    assert deployment is not None and deployment.regions == (PRIMARY, SECONDARY)
    assert deployment.bucket_suffix == request["StackId"].rsplit("/", 1)[-1]
    data = answer["Data"]
    assert set(data) == set(OUTPUT_KEYS)
    assert data["PrimaryStackName"] == f"IoTDRPrimary{data['StackPostfix']}"
    assert data["GlobalDynamoDBTableName"] == f"IoTDRGlobalTable{data['StackPostfix']}"
    assert data["IoTEndpointSecondary"].endswith(f"-ats.iot.{SECONDARY}.amazonaws.com")
    assert data["BuildId"] in builds(cloud)
    assert len(builds(cloud)) == started_before + 1
    assert (answer["StackId"], answer["RequestId"], answer["LogicalResourceId"]) == (
        request["StackId"], request["RequestId"], "LaunchSolution",
    )  # fmt: skip


def test_disabled_registry_events_fail_with_the_command_that_enables_them_and_start_no_build(
    cloud: LocalCloud,
) -> None:
    iot = cloud.client("iot", PRIMARY)
    iot.update_event_configurations(eventConfigurations={"THING_GROUP": {"Enabled": False}})
    started_before = len(builds(cloud))
    request = event(cloud, "Create", REGIONS)
    try:
        run(request)
    finally:
        iot.update_event_configurations(
            eventConfigurations={t: {"Enabled": True} for t in REGISTRY_EVENT_CONFIGURATIONS}
        )

    (answer,) = responses(cloud, request)
    assert answer["Status"] == "FAILED"
    assert (
        "THING_GROUP" in answer["Reason"]
        and f"aws iot update-event-configurations --region {PRIMARY}" in answer["Reason"]
    )
    assert len(builds(cloud)) == started_before


def test_same_region_twice_fails_validation_once(cloud: LocalCloud) -> None:
    request = event(cloud, "Create", {**REGIONS, "SecondaryRegion": PRIMARY})

    run(request)

    (answer,) = responses(cloud, request)
    assert (answer["Status"], answer["Reason"]) == (
        "FAILED",
        "PrerequisiteError: PrimaryRegion and SecondaryRegion must differ.",
    )


def test_an_unexpected_error_is_answered_failed_once_with_its_type(cloud: LocalCloud) -> None:
    request = event(cloud, "Create", REGIONS)

    handle_event(request, Context(900), LaunchSettings("no-such-project"), aws.client, PRIMARY)

    (answer,) = responses(cloud, request)
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("ResourceNotFoundException")


def test_near_the_timeout_one_failed_answer_is_sent_and_the_late_success_is_dropped(cloud: LocalCloud) -> None:
    request = event(cloud, "Create", REGIONS)
    slow = SlowCodeBuild(delay=1.5)

    # 5.5 s left: the watchdog answers 5 s before the end, while StartBuild is still running.
    run(
        request,
        seconds=5.5,
        client=lambda service, region: slow if service == "codebuild" else aws.client(service, region),
    )

    answers = responses(cloud, request)
    assert [(a["Status"], a["Reason"]) for a in answers] == [("FAILED", "Timed out before finishing")]
    # The id names the deployment the late build may create, so CloudFormation's Delete removes it.
    assert deployment_of(answers[0]["PhysicalResourceId"], request["StackId"]) is not None


def test_changing_regions_on_update_fails_and_names_the_way_out(cloud: LocalCloud) -> None:
    request = event(
        cloud, "Update", {**REGIONS, "SecondaryRegion": "eu-west-1"},
        PhysicalResourceId=f"IoTDR:20260101000000:{PRIMARY}:{SECONDARY}",
    )  # fmt: skip
    request["OldResourceProperties"] = REGIONS

    run(request)

    (answer,) = responses(cloud, request)
    assert answer["Status"] == "FAILED" and "Delete this stack and launch a new one" in answer["Reason"]
    assert answer["PhysicalResourceId"] == f"IoTDR:20260101000000:{PRIMARY}:{SECONDARY}"


def test_delete_of_a_create_that_never_launched_succeeds_without_touching_anything(cloud: LocalCloud) -> None:
    request = event(cloud, "Delete", REGIONS, PhysicalResourceId="LaunchSolution-not-launched")

    run(request)

    assert [a["Status"] for a in responses(cloud, request)] == ["SUCCESS"]


def test_deleting_the_main_stack_removes_the_deployment_its_build_made(cloud: LocalCloud, tmp_path: Path) -> None:
    create = event(cloud, "Create", REGIONS)
    run(create)
    (created,) = responses(cloud, create)
    data = created["Data"]
    build = build_artifacts(tmp_path / "artifacts")
    # What the CodeBuild project runs with the environment the custom resource gave the build.
    assert launcher.main(
        ["--primary-region", PRIMARY, "--secondary-region", SECONDARY, "--stack-postfix", data["StackPostfix"],
         "--bucket-suffix", data["BucketSuffix"], "--artifacts", str(build.output_dir)],
        progress=lambda _: None,
    ) == 0  # fmt: skip
    assert cloud.client("s3", PRIMARY).head_bucket(Bucket=data["PrimaryBucket"])
    delete = event(cloud, "Delete", REGIONS, PhysicalResourceId=created["PhysicalResourceId"])
    delete["StackId"] = create["StackId"]

    started = time.monotonic()
    run(delete)
    print(f"delete answered after {time.monotonic() - started:.1f} s")

    (answer,) = responses(cloud, delete)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    for region in (PRIMARY, SECONDARY):
        assert cloud.client("cloudformation", region).describe_stacks()["Stacks"] == []
        tables = cloud.client("dynamodb", region).list_tables()["TableNames"]
        assert data["GlobalDynamoDBTableName"] not in tables
    buckets = {b["Name"] for b in cloud.client("s3", PRIMARY).list_buckets()["Buckets"]}
    assert not {b for b in buckets if b.endswith(data["BucketSuffix"])}


def test_a_bucket_the_deployment_does_not_own_is_reported_and_the_delete_fails(cloud: LocalCloud) -> None:
    stack_uuid = str(uuid.uuid4())
    s3 = cloud.client("s3", SECONDARY)
    bucket = f"iot-dr-secondary-{stack_uuid}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": SECONDARY})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "IoTDRDeployment", "Value": "someone-else"}]})
    delete = event(cloud, "Delete", REGIONS, PhysicalResourceId=f"IoTDR:20260101000000:{PRIMARY}:{SECONDARY}")
    delete["StackId"] = delete["StackId"].rsplit("/", 1)[0] + f"/{stack_uuid}"

    run(delete)

    (answer,) = responses(cloud, delete)
    assert answer["Status"] == "FAILED"
    assert f"bucket {bucket} is not tagged IoTDRDeployment={stack_uuid}; left untouched" in answer["Reason"]
    assert s3.head_bucket(Bucket=bucket)
