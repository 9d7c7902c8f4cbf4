"""AWS::WAFv2::WebACL and its association with an API stage in the local cloud's CloudFormation."""

from __future__ import annotations

import boto3
import pytest
from stack_support import delete, deploy, outputs

REGION = "us-east-1"
RULE = {
    "Name": "RateLimitPerIp",
    "Priority": 1,
    "Action": {"Block": {}},
    "Statement": {"RateBasedStatement": {"AggregateKeyType": "IP", "EvaluationWindowSec": 300, "Limit": 100}},
    "VisibilityConfig": {"CloudWatchMetricsEnabled": True, "MetricName": "rate", "SampledRequestsEnabled": False},
}
TEMPLATE = {
    "Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "health"}},
        "Method": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ResourceId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                "HttpMethod": "GET",
                "AuthorizationType": "NONE",
                "Integration": {"Type": "MOCK", "IntegrationHttpMethod": "GET", "Uri": ""},
            },
        },
        "Deployment": {
            "Type": "AWS::ApiGateway::Deployment",
            "DependsOn": "Method",
            "Properties": {"RestApiId": {"Ref": "Api"}},
        },
        "Stage": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {"RestApiId": {"Ref": "Api"}, "DeploymentId": {"Ref": "Deployment"}, "StageName": "v1"},
        },
        "Acl": {
            "Type": "AWS::WAFv2::WebACL",
            "Properties": {
                "Name": "health-acl",
                "Scope": "REGIONAL",
                "DefaultAction": {"Allow": {}},
                "VisibilityConfig": {
                    "CloudWatchMetricsEnabled": True,
                    "MetricName": "acl",
                    "SampledRequestsEnabled": False,
                },
                "Rules": [RULE],
            },
        },
        "Association": {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Properties": {
                "ResourceArn": {"Fn::Sub": "arn:aws:apigateway:${AWS::Region}::/restapis/${Api}/stages/${Stage}"},
                "WebACLArn": {"Fn::GetAtt": ["Acl", "Arn"]},
            },
        },
    },
    "Outputs": {"Api": {"Value": {"Ref": "Api"}}, "AclArn": {"Value": {"Fn::GetAtt": ["Acl", "Arn"]}}},
}


@pytest.mark.usefixtures("cloudformation_extensions")
def test_web_acl_is_created_with_its_rules_and_attached_to_the_stage() -> None:
    wafv2 = boto3.client("wafv2", region_name=REGION)
    stack = deploy(TEMPLATE, REGION)
    values = outputs(stack)
    stage_arn = f"arn:aws:apigateway:{REGION}::/restapis/{values['Api']}/stages/v1"

    attached = wafv2.get_web_acl_for_resource(ResourceArn=stage_arn)["WebACL"]

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert attached["ARN"] == values["AclArn"]
    assert attached["Rules"][0]["Statement"]["RateBasedStatement"]["Limit"] == 100

    delete(region=REGION)

    assert wafv2.list_web_acls(Scope="REGIONAL")["WebACLs"] == []
