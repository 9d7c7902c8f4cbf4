"""Primary side: turns CloudTrail "AWS API Call via CloudTrail" events for IoT into snapshot items.

Registry events do not cover certificates, policies or principal attachments. EventBridge delivers the API
calls that change them; each becomes exactly one item holding the state of what the call changed, read right
away (complete state, never a private key): a certificate's PEM and status are read once, by the call that
changed the certificate, and an attachment carries only the attachment. Resources that predate the solution
reach the secondary through the scheduled reconciliation (``iot_dr.sync.reconcile``), not through every attachment.

The health checker's own identity stays in its region (``iot_dr.health.checker_identity``): calls on its thing or
policy are recognised from the record, its certificate from the snapshot's PEM, and none of them is written.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from iot_dr.core.errors import MalformedEvent
from iot_dr.core.items import ItemWriter
from iot_dr.core.x509_subject import pem_to_der
from iot_dr.health.checker_identity import is_checker_policy, is_checker_snapshot, is_checker_thing
from iot_dr.primary.snapshots import (
    certificate_snapshot,
    policy_snapshot,
    policy_targets_snapshot,
    thing_principals_snapshot,
)

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient

LOG = logging.getLogger(__name__)

CERTIFICATE_CALLS = {
    "CreateKeysAndCertificate",
    "CreateCertificateFromCsr",
    "RegisterCertificate",
    "RegisterCertificateWithoutCA",
    "UpdateCertificate",
    "DeleteCertificate",
}
POLICY_CALLS = {"CreatePolicy", "CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicyVersion", "DeletePolicy"}
POLICY_ATTACHMENT_CALLS = {"AttachPolicy", "DetachPolicy", "AttachPrincipalPolicy", "DetachPrincipalPolicy"}
THING_PRINCIPAL_CALLS = {"AttachThingPrincipal", "DetachThingPrincipal"}
CAPTURED_CALLS = CERTIFICATE_CALLS | POLICY_CALLS | POLICY_ATTACHMENT_CALLS | THING_PRINCIPAL_CALLS


def _field(section: dict[str, Any] | None, name: str) -> str:
    value = (section or {}).get(name)
    if not value:
        raise MalformedEvent(f"CloudTrail record has no {name!r}")
    return str(value)


def _certificate_id(detail: dict[str, Any]) -> str:
    for section in (detail.get("responseElements"), detail.get("requestParameters")):
        if (section or {}).get("certificateId"):
            return str(section["certificateId"])  # type: ignore[index]
    pem = (detail.get("requestParameters") or {}).get("certificatePem")
    if pem:
        # IoT's certificate ID is the SHA-256 of the DER encoding.
        return hashlib.sha256(pem_to_der(str(pem))).hexdigest()
    raise MalformedEvent(f"{detail.get('eventName')} record names no certificate")


def snapshots_for(iot: IoTClient, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The one snapshot a CloudTrail record calls for, as a one-element list (the item bodies to write); an empty
    list for a call on the health checker's identity.

    Raises MalformedEvent for a record without the fields its call needs or for a call not in ``CAPTURED_CALLS``.
    """
    name = detail.get("eventName")
    request = detail.get("requestParameters") or {}
    if name in CERTIFICATE_CALLS:
        return [certificate_snapshot(iot, _certificate_id(detail))]
    if name in POLICY_CALLS:
        policy_name = _field(request, "policyName")
        return [] if is_checker_policy(policy_name) else [policy_snapshot(iot, policy_name)]
    if name in POLICY_ATTACHMENT_CALLS:
        if is_checker_policy(str(request.get("policyName") or "")):
            return []
        target = request.get("target") or request.get("principal")
        if not target:
            raise MalformedEvent(f"{name} record names no target")
        return [policy_targets_snapshot(iot, str(target))]
    if name in THING_PRINCIPAL_CALLS:
        thing_name = _field(request, "thingName")
        return [] if is_checker_thing(thing_name) else [thing_principals_snapshot(iot, thing_name)]
    raise MalformedEvent(f"API call {name!r} is not one the capture handles")


def capture(iot: IoTClient, writer: ItemWriter, event: dict[str, Any]) -> dict[str, Any]:
    """Handle one EventBridge event; errors propagate so EventBridge retries and finally dead-letters it."""
    if not isinstance(event, dict):
        raise MalformedEvent("an EventBridge event must be an object")
    detail = event.get("detail")
    if event.get("detail-type") != "AWS API Call via CloudTrail" or not isinstance(detail, dict):
        raise MalformedEvent("not an 'AWS API Call via CloudTrail' event")
    if detail.get("errorCode"):
        LOG.info("failed API call, nothing changed", extra={"eventName": detail.get("eventName")})
        return {"captured": 0}
    snapshots = [s for s in snapshots_for(iot, detail) if not is_checker_snapshot(s)]
    if not snapshots:
        LOG.info("health checker identity, not replicated", extra={"eventName": detail.get("eventName")})
        return {"captured": 0}
    written = writer.put(snapshots)
    LOG.info(
        "captured",
        extra={"eventName": detail.get("eventName"), "snapshots": [s["eventType"] for s in snapshots]},
    )
    return {"captured": written}
