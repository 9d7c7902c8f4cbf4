"""AWS::IoT::Certificate (from a CSR), AWS::IoT::PolicyPrincipalAttachment and AWS::IoT::ThingPrincipalAttachment for
the local cloud's CloudFormation: moto's IoT keeps certificates and attachments, its CloudFormation does not create
them. Ref of a certificate is its id and GetAtt Arn/Id as in AWS
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-iot-certificate.html); a deleted
certificate is deactivated first, as CloudFormation does, because IoT refuses to delete an ACTIVE one. Only the CSR
form of a certificate is supported (what the health-checker template uses): a template with ``CertificatePem`` or
``CACertificatePem`` fails with a message naming the property instead of creating something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.iot.models import iot_backends

_UNSUPPORTED_CERTIFICATE_PROPERTIES = ("CertificatePem", "CACertificatePem", "CertificateMode")
_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "PENDING_ACTIVATION")


def _backend(account_id: str, region: str) -> Any:
    return iot_backends[account_id][region]


@dataclass(eq=False)
class Certificate(CloudFormationModel):
    account_id: str
    region: str
    certificate_id: str
    arn: str

    @property
    def physical_resource_id(self) -> str:
        return self.certificate_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IoT::Certificate"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "Id")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn if attribute_name == "Arn" else self.certificate_id

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Certificate:
        properties = cloudformation_json["Properties"]
        unsupported = [name for name in _UNSUPPORTED_CERTIFICATE_PROPERTIES if name in properties]
        if unsupported or "CertificateSigningRequest" not in properties:
            raise ValueError(
                f"AWS::IoT::Certificate {resource_name}: the local cloud creates certificates from "
                f"CertificateSigningRequest only (unsupported: {', '.join(unsupported) or 'no CSR given'})"
            )
        status = properties["Status"]
        if status not in _STATUSES:
            raise ValueError(f"AWS::IoT::Certificate {resource_name}: Status {status} is not one of {_STATUSES}")
        backend = _backend(account_id, region_name)
        certificate = backend.create_certificate_from_csr(properties["CertificateSigningRequest"], set_as_active=False)
        backend.update_certificate(certificate.certificate_id, status)
        return cls(account_id, region_name, certificate.certificate_id, certificate.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if self.certificate_id not in backend.certificates:
            return
        backend.update_certificate(self.certificate_id, "INACTIVE")
        backend.delete_certificate(self.certificate_id, force_delete=False)


@dataclass(eq=False)
class PolicyPrincipalAttachment(CloudFormationModel):
    account_id: str
    region: str
    policy_name: str
    principal: str

    @property
    def physical_resource_id(self) -> str:
        return f"{self.policy_name}|{self.principal}"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IoT::PolicyPrincipalAttachment"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> PolicyPrincipalAttachment:
        properties = cloudformation_json["Properties"]
        _backend(account_id, region_name).attach_policy(properties["PolicyName"], properties["Principal"])
        return cls(account_id, region_name, properties["PolicyName"], properties["Principal"])

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if (self.principal, self.policy_name) in backend.principal_policies:
            backend.detach_policy(self.policy_name, self.principal)


@dataclass(eq=False)
class ThingPrincipalAttachment(CloudFormationModel):
    account_id: str
    region: str
    thing_name: str
    principal: str

    @property
    def physical_resource_id(self) -> str:
        return f"{self.thing_name}|{self.principal}"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IoT::ThingPrincipalAttachment"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ThingPrincipalAttachment:
        properties = cloudformation_json["Properties"]
        _backend(account_id, region_name).attach_thing_principal(properties["ThingName"], properties["Principal"])
        return cls(account_id, region_name, properties["ThingName"], properties["Principal"])

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if (self.principal, self.thing_name) in backend.principal_things:
            backend.detach_thing_principal(self.thing_name, self.principal)
