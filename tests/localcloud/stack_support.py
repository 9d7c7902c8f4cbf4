"""Stacks of the local cloud's CloudFormation, created and read back as the resource-type tests need them."""

from __future__ import annotations

import json
from typing import Any

import boto3

PRIMARY = "us-east-1"


def deploy(template: dict[str, Any], region: str = PRIMARY, name: str = "stack") -> dict[str, Any]:
    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    return dict(cloudformation.describe_stacks(StackName=name)["Stacks"][0])


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def delete(name: str = "stack", region: str = PRIMARY) -> None:
    boto3.client("cloudformation", region_name=region).delete_stack(StackName=name)
