"""The base of every resource type the local cloud adds to moto's CloudFormation (``cfn_extensions``,
``cfn_alarms``, ``cfn_waf``, ``cfn_iot_identity``): what moto asks of a type, said once.

A type names itself (``TYPE``), its name property (``NAME_PROPERTY``), the field Ref gives (``REF``) and the
fields ``Fn::GetAtt`` gives (``ATTRIBUTES``), and builds a resource from the template's properties in
``from_properties``. It lists ``AddedResource`` before ``CloudFormationModel`` among its bases, so moto still
finds it among that class's direct subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Self

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException


@dataclass(eq=False)
class AddedResource:
    """A resource of a type added here; ``account_id`` and ``region`` are where its stack runs."""

    TYPE: ClassVar[str]
    NAME_PROPERTY: ClassVar[str] = ""
    REF: ClassVar[str]
    # Fn::GetAtt attribute name -> the field (or property) of the resource that holds it.
    ATTRIBUTES: ClassVar[Mapping[str, str]] = MappingProxyType({})

    account_id: str
    region: str

    @property
    def physical_resource_id(self) -> str:
        return str(getattr(self, self.REF))

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return str(getattr(self, self.ATTRIBUTES[attribute_name]))

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Self:
        return cls.from_properties(account_id, region_name, resource_name, cloudformation_json["Properties"])

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> Self:
        raise NotImplementedError


class UpdatableResource(AddedResource):
    """A type whose resources a stack update can change; types without it keep moto's abstract update."""

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Self,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Self:
        return original_resource.updated(account_id, region_name, new_resource_name, cloudformation_json["Properties"])

    def updated(self, account_id: str, region: str, new_name: str, properties: dict[str, Any]) -> Self:
        raise NotImplementedError
