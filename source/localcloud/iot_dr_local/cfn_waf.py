"""AWS::WAFv2::WebACL and AWS::WAFv2::WebACLAssociation for the local cloud's CloudFormation: moto's WAFv2 keeps web
ACLs and their associations, its CloudFormation does not create them. Ref of a web ACL is ``name|id|scope`` and
GetAtt Arn its ARN, as in AWS
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-wafv2-webacl.html).
The local cloud records the rules; it does not evaluate them (no request reaches it through API Gateway)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.wafv2.models import wafv2_backends


def _backend(account_id: str, region: str) -> Any:
    return wafv2_backends[account_id][region]


@dataclass(eq=False)
class WebAcl(CloudFormationModel):
    account_id: str
    region: str
    name: str
    acl_id: str
    scope: str
    arn: str

    @property
    def physical_resource_id(self) -> str:
        return f"{self.name}|{self.acl_id}|{self.scope}"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::WAFv2::WebACL"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "Id")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn if attribute_name == "Arn" else self.acl_id

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> WebAcl:
        properties = cloudformation_json["Properties"]
        name = properties.get("Name", resource_name)
        acl = _backend(account_id, region_name).create_web_acl(
            name=name,
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
        return cls(account_id, region_name, name, acl.id, properties["Scope"], acl.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        acl = backend.wacls.get(self.arn)
        if acl is not None:
            backend.delete_web_acl(self.name, self.scope, self.acl_id, acl.lock_token)


@dataclass(eq=False)
class WebAclAssociation(CloudFormationModel):
    account_id: str
    region: str
    resource_arn: str

    @property
    def physical_resource_id(self) -> str:
        return self.resource_arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::WAFv2::WebACLAssociation"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> WebAclAssociation:
        properties = cloudformation_json["Properties"]
        _backend(account_id, region_name).associate_web_acl(properties["WebACLArn"], properties["ResourceArn"])
        return cls(account_id, region_name, properties["ResourceArn"])

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).disassociate_web_acl(self.resource_arn)
