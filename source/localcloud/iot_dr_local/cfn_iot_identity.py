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
from types import MappingProxyType
from typing import Any, ClassVar, Self

from moto.core.common_models import CloudFormationModel
from moto.iot.models import iot_backends

from iot_dr_local.cfn_resource import AddedResource

_UNSUPPORTED_CERTIFICATE_PROPERTIES = ("CertificatePem", "CACertificatePem", "CertificateMode")
_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "PENDING_ACTIVATION")


def _backend(account_id: str, region: str) -> Any:
    return iot_backends[account_id][region]


@dataclass(eq=False)
class Certificate(AddedResource, CloudFormationModel):
    TYPE = "AWS::IoT::Certificate"
    REF = "certificate_id"
    ATTRIBUTES = MappingProxyType({"Arn": "arn", "Id": "certificate_id"})

    certificate_id: str
    arn: str

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> Certificate:
        unsupported = [key for key in _UNSUPPORTED_CERTIFICATE_PROPERTIES if key in properties]
        if unsupported or "CertificateSigningRequest" not in properties:
            raise ValueError(
                f"AWS::IoT::Certificate {name}: the local cloud creates certificates from "
                f"CertificateSigningRequest only (unsupported: {', '.join(unsupported) or 'no CSR given'})"
            )
        status = properties["Status"]
        if status not in _STATUSES:
            raise ValueError(f"AWS::IoT::Certificate {name}: Status {status} is not one of {_STATUSES}")
        backend = _backend(account_id, region)
        certificate = backend.create_certificate_from_csr(properties["CertificateSigningRequest"], set_as_active=False)
        backend.update_certificate(certificate.certificate_id, status)
        return cls(account_id, region, certificate.certificate_id, certificate.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if self.certificate_id not in backend.certificates:
            return
        backend.update_certificate(self.certificate_id, "INACTIVE")
        backend.delete_certificate(self.certificate_id, force_delete=False)


@dataclass(eq=False)
class _PrincipalAttachment(AddedResource):
    """A principal attached to a target (a policy or a thing); Ref is ``target|principal``.

    A type names the target's property (``TARGET_PROPERTY``) and the IoT backend's methods that attach and detach
    (both take the target's name, then the principal) and its set of ``(principal, target)`` pairs (``ATTACHED``).
    """

    TARGET_PROPERTY: ClassVar[str]
    ATTACH: ClassVar[str]
    DETACH: ClassVar[str]
    ATTACHED: ClassVar[str]
    REF = "reference"

    target: str
    principal: str

    @property
    def reference(self) -> str:
        return f"{self.target}|{self.principal}"

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> Self:
        target, principal = properties[cls.TARGET_PROPERTY], properties["Principal"]
        getattr(_backend(account_id, region), cls.ATTACH)(target, principal)
        return cls(account_id, region, target, principal)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if (self.principal, self.target) in getattr(backend, self.ATTACHED):
            getattr(backend, self.DETACH)(self.target, self.principal)


@dataclass(eq=False)
class PolicyPrincipalAttachment(_PrincipalAttachment, CloudFormationModel):
    TYPE = "AWS::IoT::PolicyPrincipalAttachment"
    TARGET_PROPERTY = "PolicyName"
    ATTACH = "attach_policy"
    DETACH = "detach_policy"
    ATTACHED = "principal_policies"


@dataclass(eq=False)
class ThingPrincipalAttachment(_PrincipalAttachment, CloudFormationModel):
    TYPE = "AWS::IoT::ThingPrincipalAttachment"
    TARGET_PROPERTY = "ThingName"
    ATTACH = "attach_thing_principal"
    DETACH = "detach_thing_principal"
    ATTACHED = "principal_things"
