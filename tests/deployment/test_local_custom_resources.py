"""Custom resources in the local cloud behave as in CloudFormation, so the project's own ones are tested for real.

Each stack here holds one Lambda-backed custom resource whose code (inline, as ZipFile) answers through the
pre-signed S3 URL it is given; the local cloud accepts exactly one answer per request.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from iot_dr_local.cloud import LocalCloud

REGION = "us-east-1"
RECORDS = "custom-resource-requests"

# Answers each request with `answers` PUTs of `status`; records every request type it sees in the RECORDS bucket.
HANDLER = textwrap.dedent(
    """
    import json, os, urllib.request, uuid
    import boto3

    def handler(event, context):
        boto3.client("s3").put_object(
            Bucket=os.environ["RECORDS"], Key=f"{event['RequestType']}/{uuid.uuid4()}", Body=json.dumps(event)
        )
        props = event["ResourceProperties"]
        status = props.get(event["RequestType"] + "Status", "SUCCESS")
        for _ in range(int(props.get("Answers", "1"))):
            body = json.dumps({
                "Status": status, "Reason": "told to " + status.lower(), "PhysicalResourceId": "resource-1",
                "StackId": event["StackId"], "RequestId": event["RequestId"],
                "LogicalResourceId": event["LogicalResourceId"], "Data": {"Answer": "42"},
            }).encode()
            put = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
            urllib.request.urlopen(put).read()
    """
)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    local = LocalCloud(REGION, "us-west-2")
    local.start()
    try:
        local.client("s3", REGION).create_bucket(Bucket=RECORDS)
        yield local
    finally:
        local.stop()


def template(**properties: str) -> str:
    return json.dumps(
        {
            "Resources": {
                "Role": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {
                        "AssumeRolePolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"Service": "lambda.amazonaws.com"},
                                    "Action": "sts:AssumeRole",
                                }
                            ],
                        }
                    },
                },
                "Function": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "python3.12",
                        "Handler": "index.handler",
                        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                        "Code": {"ZipFile": HANDLER},
                        "Environment": {"Variables": {"RECORDS": RECORDS}},
                    },
                },
                "Resource": {
                    "Type": "Custom::Probe",
                    "Properties": {"ServiceToken": {"Fn::GetAtt": ["Function", "Arn"]}, **properties},
                },
            },
            "Outputs": {"Answer": {"Value": {"Fn::GetAtt": ["Resource", "Answer"]}}},
        }
    )


def create(cloud: LocalCloud, **properties: str) -> tuple[str, dict[str, Any]]:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    cloudformation = cloud.client("cloudformation", REGION)
    cloudformation.create_stack(StackName=name, TemplateBody=template(**properties))
    return name, cloudformation.describe_stacks(StackName=name)["Stacks"][0]


def requests_seen(cloud: LocalCloud, request_type: str) -> list[dict[str, Any]]:
    s3 = cloud.client("s3", REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=RECORDS, Prefix=f"{request_type}/").get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=RECORDS, Key=key)["Body"].read()) for key in keys]


def test_one_success_answer_completes_the_stack_and_its_data_feeds_get_att(cloud: LocalCloud) -> None:
    name, stack = create(cloud)

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Outputs"] == [{"OutputKey": "Answer", "OutputValue": "42"}]
    resource = cloud.client("cloudformation", REGION).describe_stack_resource(
        StackName=name, LogicalResourceId="Resource"
    )
    assert resource["StackResourceDetail"]["PhysicalResourceId"] == "resource-1"
    (request,) = [r for r in requests_seen(cloud, "Create") if r["StackId"] == stack["StackId"]]
    assert request["ResponseURL"].startswith(cloud.endpoint) and "Signature=" in request["ResponseURL"]


def test_deleting_the_stack_sends_delete_with_the_physical_id_before_the_function_goes(cloud: LocalCloud) -> None:
    name, stack = create(cloud)

    cloud.client("cloudformation", REGION).delete_stack(StackName=name)

    (request,) = [r for r in requests_seen(cloud, "Delete") if r["StackId"] == stack["StackId"]]
    assert request["PhysicalResourceId"] == "resource-1"
    assert (
        cloud.client("cloudformation", REGION).describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"]
        == "DELETE_COMPLETE"
    )


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"Answers": "2"}, "Resource answered Create 2 times"),
        ({"Answers": "0"}, "Resource answered Create 0 times"),
        ({"CreateStatus": "FAILED"}, "Resource failed: told to failed"),
    ],
    ids=["twice", "never", "failed"],
)
def test_anything_but_exactly_one_success_fails_the_stack_with_the_reason(
    cloud: LocalCloud, properties: dict[str, str], reason: str
) -> None:
    _, stack = create(cloud, **properties)

    assert (stack["StackStatus"], stack["StackStatusReason"]) == ("CREATE_FAILED", reason)


def test_a_failed_delete_leaves_the_stack_delete_failed_with_the_reason(cloud: LocalCloud) -> None:
    name, _ = create(cloud, DeleteStatus="FAILED")
    cloudformation = cloud.client("cloudformation", REGION)

    cloudformation.delete_stack(StackName=name)

    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "DELETE_FAILED"
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    assert any(
        "told to failed" in e.get("ResourceStatusReason", "") for e in events if e["ResourceStatus"] == "DELETE_FAILED"
    )
