"""AWS::WAFv2::WebACL and AWS::WAFv2::WebACLAssociation for the local cloud's CloudFormation: moto's WAFv2 keeps web
ACLs and their associations, its CloudFormation does not create them. Ref of a web ACL is ``name|id|scope`` and
GetAtt Arn its ARN, as in AWS
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-wafv2-webacl.html).
The local cloud records the rules; it does not evaluate them (no request reaches it through API Gateway)."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.wafv2.models import wafv2_backends

from iot_dr_local.cfn_resource import AddedResource


def _backend(account_id: str, region: str) -> Any:
    return wafv2_backends[account_id][region]


@dataclass(eq=False)
class WebAcl(AddedResource, CloudFormationModel):
    TYPE = "AWS::WAFv2::WebACL"
    NAME_PROPERTY = "Name"
    REF = "reference"
    ATTRIBUTES = MappingProxyType({"Arn": "arn", "Id": "acl_id"})

    name: str
    acl_id: str
    scope: str
    arn: str

    @property
    def reference(self) -> str:
        return f"{self.name}|{self.acl_id}|{self.scope}"

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> WebAcl:
        acl_name = properties.get("Name", name)
        acl = _backend(account_id, region).create_web_acl(
            name=acl_name,
            visibility_config=properties["VisibilityConfig"],
            default_action=properties["DefaultAction"],
            scope=properties["Scope"],
            description=properties.get("Description", ""),
            tags=properties.get("Tags", []),
            rules=properties.get("Rules", []),
            association_config=None,
            captcha_config=None,
            challenge_config=None,
            custom_response_bodies=None,
            token_domains=None,
        )
        return cls(account_id, region, acl_name, acl.id, properties["Scope"], acl.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        acl = backend.wacls.get(self.arn)
        if acl is not None:
            backend.delete_web_acl(self.name, self.scope, self.acl_id, acl.lock_token)


@dataclass(eq=False)
class WebAclAssociation(AddedResource, CloudFormationModel):
    TYPE = "AWS::WAFv2::WebACLAssociation"
    REF = "resource_arn"

    resource_arn: str

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> WebAclAssociation:
        _backend(account_id, region).associate_web_acl(properties["WebACLArn"], properties["ResourceArn"])
        return cls(account_id, region, properties["ResourceArn"])

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).disassociate_web_acl(self.resource_arn)
