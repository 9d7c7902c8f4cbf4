"""One device as the solution replicates it, read from one region, and its comparison across two regions.

A device is its thing (attributes, type), its thing groups, every certificate attached to it (ID and status), every
policy attached to those certificates (default document and all version documents, ARNs compared region-aware) and
its classic and named shadows (desired and reported state). ``compare_devices`` lists every field that differs,
so a device with several certificates or policies is compared whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iot_dr.core.arns import rewrite_policy_document
from iot_dr.secondary.replicate.context import certificate_id_of, is_not_found, named_shadows, paginate

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient
    from types_boto3_iot_data import IoTDataPlaneClient

CLASSIC_SHADOW = "(classic)"


def canonical_document(document: str) -> str:
    """A policy document in one spelling: parsed and dumped with sorted keys."""
    return json.dumps(json.loads(document), sort_keys=True)


def shadow_document(iot_data: IoTDataPlaneClient, thing: str, shadow: str | None) -> dict[str, Any] | None:
    """The shadow document ``GetThingShadow`` returns (``shadow`` None: the classic shadow); None if absent.

    https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html
    """
    named = {"shadowName": shadow} if shadow else {}
    try:
        document: dict[str, Any] = json.loads(iot_data.get_thing_shadow(thingName=thing, **named)["payload"].read())
    except Exception as err:
        if is_not_found(err):
            return None
        raise
    return document


def shadow_state(iot_data: IoTDataPlaneClient, thing: str, shadow: str | None) -> dict[str, Any] | None:
    """The ``desired`` and ``reported`` sections of a shadow (``shadow`` None: the classic one); None if absent."""
    document = shadow_document(iot_data, thing, shadow)
    if document is None:
        return None
    state = document.get("state", {})
    return {section: state[section] for section in ("desired", "reported") if section in state}


def read_policy(iot: IoTClient, name: str) -> dict[str, Any]:
    """``{"default": document, "documents": [every version's document, sorted]}``, documents canonical."""
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    documents = {
        v["versionId"]: canonical_document(
            iot.get_policy_version(policyName=name, policyVersionId=v["versionId"])["policyDocument"]
        )
        for v in versions
    }
    default = next(v["versionId"] for v in versions if v["isDefaultVersion"])
    return {"default": documents[default], "documents": sorted(documents.values())}


@dataclass(frozen=True)
class Device:
    """A device in one region. ``certificates``: ID → {"status", "policies": [names]}; ``policies``: name →
    ``read_policy``; ``shadows``: shadow name (``CLASSIC_SHADOW`` for the classic one) → state."""

    name: str
    attributes: dict[str, str]
    thing_type: str | None
    groups: list[str]
    certificates: dict[str, dict[str, Any]]
    policies: dict[str, dict[str, Any]]
    shadows: dict[str, dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        """The device as JSON: ``thingName``, ``attributes``, ``thingTypeName``, ``thingGroups``, ``certificates``,
        ``policies`` and ``shadows`` (shadow name, ``""`` for the classic shadow, to its state)."""
        return {
            "thingName": self.name,
            "attributes": self.attributes,
            "thingTypeName": self.thing_type,
            "thingGroups": self.groups,
            "certificates": self.certificates,
            "policies": self.policies,
            "shadows": self.shadows,
        }


def read_device(iot: IoTClient, iot_data: IoTDataPlaneClient, name: str, shadows: bool = True) -> Device | None:
    """The device ``name`` in the region of ``iot``; None when the thing does not exist there."""
    try:
        thing = iot.describe_thing(thingName=name)
    except Exception as err:
        if is_not_found(err):
            return None
        raise
    certificates: dict[str, dict[str, Any]] = {}
    policies: dict[str, dict[str, Any]] = {}
    for arn in paginate(iot, "list_thing_principals", "principals", thingName=name):
        certificate_id = certificate_id_of(arn)
        if certificate_id is None:
            continue
        description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        attached = sorted(p["policyName"] for p in paginate(iot, "list_attached_policies", "policies", target=arn))
        certificates[certificate_id] = {"status": description["status"], "policies": attached}
        for policy in attached:
            if policy not in policies:
                policies[policy] = read_policy(iot, policy)
    states: dict[str, dict[str, Any]] = {}
    for shadow in [None, *named_shadows(iot_data, name)] if shadows else []:
        state = shadow_state(iot_data, name, shadow)
        if state is not None:
            states[shadow or CLASSIC_SHADOW] = state
    return Device(
        name=name,
        attributes=thing.get("attributes", {}),
        thing_type=thing.get("thingTypeName"),
        groups=sorted(
            g["groupName"] for g in paginate(iot, "list_thing_groups_for_thing", "thingGroups", thingName=name)
        ),
        certificates=certificates,
        policies=policies,
        shadows=states,
    )


@dataclass(frozen=True)
class Difference:
    """One field of a device that differs: ``field`` is a path such as ``policies/p1/default``."""

    field: str
    primary: Any
    secondary: Any

    def as_json(self) -> dict[str, Any]:
        """``{"field", "primary", "secondary"}``: the path and the value on each side."""
        return {"field": self.field, "primary": self.primary, "secondary": self.secondary}


def _as_seen_from(policy: dict[str, Any], source_region: str, target_region: str) -> dict[str, Any]:
    def rewrite(document: str) -> str:
        return canonical_document(rewrite_policy_document(document, source_region, target_region))

    return {"default": rewrite(policy["default"]), "documents": sorted(rewrite(d) for d in policy["documents"])}


def compare_devices(
    primary: Device | None, secondary: Device | None, primary_region: str, secondary_region: str
) -> list[Difference]:
    """Every difference between the device in the primary and in the secondary; empty when in sync.

    Policy documents of the primary are compared with their region-specific ARNs rewritten for the secondary, as
    the replication writes them.
    """
    if primary is None or secondary is None:
        if primary is secondary:
            return []
        return [Difference("thing", primary is not None, secondary is not None)]
    differences: list[Difference] = []

    def check(field: str, left: Any, right: Any) -> None:
        if left != right:
            differences.append(Difference(field, left, right))

    check("attributes", primary.attributes, secondary.attributes)
    check("thingTypeName", primary.thing_type, secondary.thing_type)
    check("thingGroups", primary.groups, secondary.groups)
    for certificate in sorted(set(primary.certificates) | set(secondary.certificates)):
        check(
            f"certificates/{certificate}",
            primary.certificates.get(certificate),
            secondary.certificates.get(certificate),
        )
    for policy in sorted(set(primary.policies) | set(secondary.policies)):
        expected = primary.policies.get(policy)
        if expected is not None:
            expected = _as_seen_from(expected, primary_region, secondary_region)
        check(f"policies/{policy}", expected, secondary.policies.get(policy))
    for shadow in sorted(set(primary.shadows) | set(secondary.shadows)):
        check(f"shadows/{shadow}", primary.shadows.get(shadow), secondary.shadows.get(shadow))
    return differences
