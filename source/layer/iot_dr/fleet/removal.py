"""Delete a device with what only it uses: its shadows, certificates no other thing uses, and policies no other
principal or target uses.

Deleting in the primary is enough: the replication deletes the same resources in the secondary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iot_dr.core.aws import error_code
from iot_dr.secondary.replicate.context import (
    certificate_id_of,
    ignore_not_found,
    is_not_found,
    named_shadows,
    paginate,
)

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient
    from types_boto3_iot_data import IoTDataPlaneClient


@dataclass
class Removed:
    """What ``delete_device`` deleted (names and certificate IDs) and what it kept because others use it."""

    thing: str
    shadows: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _delete_policy_if_unused(iot: IoTClient, policy: str, removed: Removed) -> None:
    if any(True for _ in paginate(iot, "list_targets_for_policy", "targets", policyName=policy)):
        removed.kept.append(f"policy {policy} (attached elsewhere)")
        return
    for version in iot.list_policy_versions(policyName=policy)["policyVersions"]:
        if not version["isDefaultVersion"]:
            ignore_not_found(iot.delete_policy_version, policyName=policy, policyVersionId=version["versionId"])
    ignore_not_found(iot.delete_policy, policyName=policy)
    removed.policies.append(policy)


def _delete_detached_certificate(iot: IoTClient, certificate_id: str, timeout: float) -> None:
    """DeleteCertificate, retried while AWS still sees the thing attachment: DetachThingPrincipal is asynchronous
    (https://docs.aws.amazon.com/iot/latest/apireference/API_DetachThingPrincipal.html)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            iot.delete_certificate(certificateId=certificate_id)
            return
        except Exception as err:
            if is_not_found(err):
                return
            if error_code(err) != "DeleteConflictException" or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _delete_certificate_if_unused(iot: IoTClient, thing: str, arn: str, removed: Removed, timeout: float) -> None:
    certificate_id = certificate_id_of(arn)
    if certificate_id is None:
        return
    # The detachment from ``thing`` may not be visible yet: only other things keep the certificate.
    if any(other != thing for other in paginate(iot, "list_principal_things", "things", principal=arn)):
        removed.kept.append(f"certificate {certificate_id} (attached to another thing)")
        return
    policies = [p["policyName"] for p in paginate(iot, "list_attached_policies", "policies", target=arn)]
    for policy in policies:
        ignore_not_found(iot.detach_policy, policyName=policy, target=arn)
    ignore_not_found(iot.update_certificate, certificateId=certificate_id, newStatus="INACTIVE")
    _delete_detached_certificate(iot, certificate_id, timeout)
    removed.certificates.append(certificate_id)
    for policy in policies:
        _delete_policy_if_unused(iot, policy, removed)


def delete_device(iot: IoTClient, iot_data: IoTDataPlaneClient, name: str, timeout: float = 60.0) -> Removed | None:
    """Delete the thing ``name`` with its shadows and unshared certificates and policies; None if it is absent.

    ``timeout``: seconds to wait for a detachment to propagate before a certificate can be deleted.
    """
    try:
        iot.describe_thing(thingName=name)
    except Exception as err:
        if is_not_found(err):
            return None
        raise
    removed = Removed(name)
    for shadow in list(named_shadows(iot_data, name)):
        ignore_not_found(iot_data.delete_thing_shadow, thingName=name, shadowName=shadow)
        removed.shadows.append(shadow)
    try:
        iot_data.delete_thing_shadow(thingName=name)
        removed.shadows.append("(classic)")
    except Exception as err:
        if not is_not_found(err):
            raise
    principals = list(paginate(iot, "list_thing_principals", "principals", thingName=name))
    for arn in principals:
        ignore_not_found(iot.detach_thing_principal, thingName=name, principal=arn)
    for arn in principals:
        _delete_certificate_if_unused(iot, name, arn, removed, timeout)
    ignore_not_found(iot.delete_thing, thingName=name)
    return removed
