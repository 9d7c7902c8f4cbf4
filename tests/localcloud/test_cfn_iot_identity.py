"""AWS::IoT::Certificate from a CSR and the policy and thing attachments of its principal in the local cloud's
CloudFormation: created with Ref and GetAtt as in AWS, removed with their stack."""

from __future__ import annotations

import boto3
import pytest
from stack_support import delete, deploy, outputs

from iot_dr.health.checker_credentials import new_key_and_csr

REGION = "us-east-1"


def template(csr: str) -> dict[str, object]:
    certificate_arn = {"Fn::GetAtt": ["Certificate", "Arn"]}
    return {
        "Resources": {
            "Thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "checker"}},
            "Policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyName": "checker-policy",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
                    },
                },
            },
            "Certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": csr, "Status": "ACTIVE"},
            },
            "PolicyAttachment": {
                "Type": "AWS::IoT::PolicyPrincipalAttachment",
                "Properties": {"PolicyName": {"Ref": "Policy"}, "Principal": certificate_arn},
            },
            "ThingAttachment": {
                "Type": "AWS::IoT::ThingPrincipalAttachment",
                "Properties": {"ThingName": {"Ref": "Thing"}, "Principal": certificate_arn},
            },
        },
        "Outputs": {
            "Ref": {"Value": {"Ref": "Certificate"}},
            "Id": {"Value": {"Fn::GetAtt": ["Certificate", "Id"]}},
            "Arn": {"Value": certificate_arn},
            "PolicyAttachment": {"Value": {"Ref": "PolicyAttachment"}},
            "ThingAttachment": {"Value": {"Ref": "ThingAttachment"}},
        },
    }


@pytest.mark.usefixtures("cloudformation_extensions")
def test_certificate_from_a_csr_is_attached_to_its_policy_and_thing_and_removed_with_the_stack() -> None:
    iot = boto3.client("iot", region_name=REGION)
    _, csr = new_key_and_csr("checker")
    stack = deploy(template(csr), REGION)
    values = outputs(stack)

    certificate = iot.describe_certificate(certificateId=values["Ref"])["certificateDescription"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert (values["Id"], values["Arn"]) == (certificate["certificateId"], certificate["certificateArn"])
    assert certificate["status"] == "ACTIVE"
    assert [p["policyName"] for p in iot.list_attached_policies(target=values["Arn"])["policies"]] == ["checker-policy"]
    assert iot.list_principal_things(principal=values["Arn"])["things"] == ["checker"]
    assert values["PolicyAttachment"] == f"checker-policy|{values['Arn']}"
    assert values["ThingAttachment"] == f"checker|{values['Arn']}"

    delete(region=REGION)

    assert iot.list_certificates()["certificates"] == []
    assert iot.list_things()["things"] == []
    assert iot.list_policies()["policies"] == []
