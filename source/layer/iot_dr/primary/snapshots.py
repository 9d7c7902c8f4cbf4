"""Complete state of primary-region resources, read at the source so the secondary never has to call back.

``capturedAt`` is the time just before the first read: of several snapshots of one resource, the one that
started last is the one that saw the latest state, which is what the secondary's ledger keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iot_dr.core.errors import TransientReplicationError
from iot_dr.core.event_types import EventType
from iot_dr.core.items import now_ms
from iot_dr.secondary.replicate.context import certificate_id_of, describe_or_none, is_not_found, paginate

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient


def certificate_snapshot(iot: IoTClient, certificate_id: str) -> dict[str, Any]:
    """A CERTIFICATE_EVENT body: ``certificateId``, ``capturedAt`` (ms), ``exists`` and, when it exists, its
    ``certificatePem`` and ``status`` (DescribeCertificate, https://docs.aws.amazon.com/iot/latest/apireference/API_DescribeCertificate.html).
    ClientError other than not-found propagates."""
    captured_at = now_ms()
    described = describe_or_none(iot.describe_certificate, certificateId=certificate_id)
    body: dict[str, Any] = {
        "eventType": str(EventType.CERTIFICATE),
        "certificateId": certificate_id,
        "capturedAt": captured_at,
        "exists": described is not None,
    }
    if described is not None:
        description = described["certificateDescription"]
        body.update(certificatePem=description["certificatePem"], status=description["status"])
    return body


# A policy whose versions keep changing while it is read is read again this many times before giving up.
POLICY_READ_ATTEMPTS = 3


def policy_snapshot(iot: IoTClient, policy_name: str) -> dict[str, Any]:
    """All versions of a policy (``versions``: [{versionId, isDefault, document}]) or ``exists: False``.

    Only ``ListPolicyVersions`` failing with ResourceNotFoundException means the policy is gone. A version deleted
    between the list and its ``GetPolicyVersion`` means the policy changed meanwhile: it is read again, and
    after ``POLICY_READ_ATTEMPTS`` such races TransientReplicationError is raised (the event is retried by
    EventBridge and Lambda, and parked in the capture dead-letter queue if it still fails).
    """
    for _ in range(POLICY_READ_ATTEMPTS):
        captured_at = now_ms()
        body: dict[str, Any] = {
            "eventType": str(EventType.POLICY),
            "policyName": policy_name,
            "capturedAt": captured_at,
            "exists": False,
            "versions": [],
        }
        try:
            versions = iot.list_policy_versions(policyName=policy_name)["policyVersions"]
        except Exception as err:
            if not is_not_found(err):
                raise
            return body
        try:
            body["versions"] = [
                {
                    "versionId": version["versionId"],
                    "isDefault": bool(version["isDefaultVersion"]),
                    "document": iot.get_policy_version(policyName=policy_name, policyVersionId=version["versionId"])[
                        "policyDocument"
                    ],
                }
                for version in versions
            ]
        except Exception as err:
            if not is_not_found(err):
                raise
            continue
        body["exists"] = True
        return body
    raise TransientReplicationError(f"policy {policy_name} kept changing while it was read")


def thing_principals(iot: IoTClient, thing_name: str) -> list[dict[str, str]]:
    """The certificates attached to an existing thing, each ``{"principal": <ARN>, "thingPrincipalType": ...}``,
    sorted by ARN.

    ``ListThingPrincipalsV2`` gives the attachment type (``EXCLUSIVE_THING`` or ``NON_EXCLUSIVE_THING``), so the
    secondary attaches the same way
    (https://docs.aws.amazon.com/iot/latest/apireference/API_ListThingPrincipalsV2.html). Other principals
    (Cognito identities) are left out: they are not replicated. Raises the ClientError
    ``ResourceNotFoundException`` when the thing does not exist.
    """
    return sorted(
        (
            {
                "principal": attachment["principal"],
                "thingPrincipalType": attachment.get("thingPrincipalType") or NON_EXCLUSIVE,
            }
            for attachment in paginate(iot, "list_thing_principals_v2", "thingPrincipalObjects", thingName=thing_name)
            if certificate_id_of(attachment["principal"])
        ),
        key=lambda attachment: attachment["principal"],
    )


def thing_principals_snapshot(iot: IoTClient, thing_name: str) -> dict[str, Any]:
    """The certificates attached to a thing (``thing_principals``), or none with ``exists: False`` when the thing
    does not exist."""
    captured_at = now_ms()
    exists = describe_or_none(iot.describe_thing, thingName=thing_name) is not None
    return {
        "eventType": str(EventType.THING_PRINCIPALS),
        "thingName": thing_name,
        "capturedAt": captured_at,
        "exists": exists,
        "principals": thing_principals(iot, thing_name) if exists else [],
    }


NON_EXCLUSIVE = "NON_EXCLUSIVE_THING"


def policy_targets_snapshot(iot: IoTClient, target_arn: str) -> dict[str, Any]:
    """A POLICY_TARGETS_EVENT body: the policies attached to ``target_arn`` (sorted names; empty when the target is
    gone) with ``capturedAt`` (ms). ClientError other than not-found propagates."""
    captured_at = now_ms()
    try:
        policies = sorted(
            p["policyName"] for p in paginate(iot, "list_attached_policies", "policies", target=target_arn)
        )
    except Exception as err:
        if not is_not_found(err):
            raise
        policies = []
    return {
        "eventType": str(EventType.POLICY_TARGETS),
        "target": target_arn,
        "capturedAt": captured_at,
        "policies": policies,
    }


def thing_snapshot(iot: IoTClient, thing_name: str) -> dict[str, Any]:
    """The thing as a registry THING_EVENT, ordered by the time it was read and its registry version."""
    captured_at = now_ms()
    described = describe_or_none(iot.describe_thing, thingName=thing_name)
    if described is None:
        return {
            "eventType": str(EventType.THING),
            "operation": "DELETED",
            "thingName": thing_name,
            "timestamp": captured_at,
            "versionNumber": 0,
        }
    return {
        "eventType": str(EventType.THING),
        "operation": "UPDATED",
        "thingName": thing_name,
        "thingId": described.get("thingId"),
        "thingTypeName": described.get("thingTypeName"),
        "attributes": described.get("attributes") or {},
        "versionNumber": int(described.get("version") or 0),
        "timestamp": captured_at,
    }
