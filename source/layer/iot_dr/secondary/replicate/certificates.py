"""Certificates, registered in the secondary through multi-account registration with the primary's status."""

from __future__ import annotations

import logging
from typing import Any, Literal

from iot_dr.core.aws import error_code
from iot_dr.core.errors import ReplicationError, TransientReplicationError
from iot_dr.secondary.ledger import Outcome, converge, order_key
from iot_dr.secondary.replicate.context import (
    Secondary,
    describe_or_none,
    ignore_not_found,
    is_not_found,
    paginate,
    require,
    require_int,
)

LOG = logging.getLogger(__name__)

# Statuses a certificate can be given through UpdateCertificate; the others are transitional states that only
# IoT itself sets, and the secondary keeps such a certificate inactive until the primary decides.
SettableStatus = Literal["ACTIVE", "INACTIVE", "REVOKED"]
SETTABLE_STATUSES: tuple[SettableStatus, ...] = ("ACTIVE", "INACTIVE", "REVOKED")


def certificate_key(certificate_id: str) -> str:
    """The ledger key of a certificate, ``certificate#<id>``."""
    return f"certificate#{certificate_id}"


def secondary_status(primary_status: str) -> SettableStatus:
    """The status the replica gets: the primary's when it can be set with UpdateCertificate, else ``INACTIVE``."""
    return next((status for status in SETTABLE_STATUSES if status == primary_status), "INACTIVE")


def apply_certificate_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Apply a CERTIFICATE_EVENT (``certificateId``, ``capturedAt`` ms, ``exists``, ``certificatePem``,
    ``status``)     unless a newer one was applied; raises ``MalformedEvent`` for a missing field."""
    certificate_id = require(event, "certificateId")
    exists = bool(event.get("exists", True))
    state = {
        "exists": exists,
        "certificateId": certificate_id,
        "certificatePem": require(event, "certificatePem") if exists else None,
        "status": require(event, "status") if exists else None,
    }
    key = order_key((require_int(event, "capturedAt"),))
    return converge(ctx.ledger, certificate_key(certificate_id), key, state, lambda s: write_certificate(ctx, s))


def write_certificate(ctx: Secondary, state: dict[str, Any]) -> None:
    """Make the secondary's certificate match ``state`` (``exists``, ``certificateId``, ``certificatePem``,
    ``status``): registered without a CA
    (https://docs.aws.amazon.com/iot/latest/apireference/API_RegisterCertificateWithoutCA.html) with the settable
    status, updated, or detached and deleted. Raises ``ReplicationError`` when the PEM does not match its id, and
    ``TransientReplicationError`` when a concurrent execution deleted it meanwhile."""
    certificate_id = state["certificateId"]
    current = describe_or_none(ctx.iot.describe_certificate, certificateId=certificate_id)
    if not state["exists"]:
        if current is not None:
            _delete_certificate(ctx, current["certificateDescription"])
        return
    wanted = secondary_status(state["status"])
    if current is None:
        status = (
            _initial_status(wanted)
            if _registered_as_expected(ctx, state, wanted)
            # Registered concurrently by another execution, with the status it read.
            else ctx.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
        )
    else:
        status = current["certificateDescription"]["status"]
    _set_status(ctx, certificate_id, status, wanted)


def register_new_certificate(ctx: Secondary, state: dict[str, Any]) -> bool:
    """Register a certificate the caller expects to be missing in the secondary (``state`` as for
    ``write_certificate``, existing in the primary) without a DescribeCertificate first, and give it its status;
    returns False, having changed nothing, when the PEM is registered already
    (``ResourceAlreadyExistsException``,
    https://docs.aws.amazon.com/iot/latest/apireference/API_RegisterCertificateWithoutCA.html): then
    ``write_certificate`` compares it. A certificate this returns True for has nothing attached yet.
    """
    wanted = secondary_status(state["status"])
    if not _registered_as_expected(ctx, state, wanted):
        return False
    _set_status(ctx, state["certificateId"], _initial_status(wanted), wanted)
    return True


def _registered_as_expected(ctx: Secondary, state: dict[str, Any], status: SettableStatus) -> bool:
    """Register the PEM; False if it is registered already. Raises ReplicationError when IoT gives it another ID."""
    registered = _register(ctx, state["certificatePem"], status)
    if registered not in (None, state["certificateId"]):
        raise ReplicationError(
            f"certificate registered as {registered}, expected {state['certificateId']}: the PEM does not match its ID"
        )
    return registered is not None


def _set_status(ctx: Secondary, certificate_id: str, status: str, wanted: SettableStatus) -> None:
    if status == wanted:
        return
    try:
        ctx.iot.update_certificate(certificateId=certificate_id, newStatus=wanted)
    except Exception as err:
        # Deleted meanwhile by a concurrent execution (Express workflows run side by side): retried, and the
        # version ledger then decides whether this state or the deletion is the newer one.
        if is_not_found(err):
            raise TransientReplicationError(f"certificate {certificate_id} changed while it was written") from err
        raise


def _initial_status(status: str) -> Literal["ACTIVE", "INACTIVE"]:
    """Registration accepts ACTIVE or INACTIVE; REVOKED is set by the status update that follows."""
    return "ACTIVE" if status == "ACTIVE" else "INACTIVE"


def _register(ctx: Secondary, pem: str, status: str) -> str | None:
    """Register the PEM; None if a concurrent execution registered it first."""
    try:
        return str(
            ctx.iot.register_certificate_without_ca(certificatePem=pem, status=_initial_status(status))["certificateId"]
        )
    except Exception as err:
        if error_code(err) == "ResourceAlreadyExistsException":
            return None
        raise


def _delete_certificate(ctx: Secondary, description: dict[str, Any]) -> None:
    arn, certificate_id = description["certificateArn"], description["certificateId"]
    for thing in list(paginate(ctx.iot, "list_principal_things", "things", principal=arn)):
        ignore_not_found(ctx.iot.detach_thing_principal, thingName=thing, principal=arn)
    for policy in list(paginate(ctx.iot, "list_attached_policies", "policies", target=arn)):
        ignore_not_found(ctx.iot.detach_policy, policyName=policy["policyName"], target=arn)
    if description["status"] == "ACTIVE":
        ignore_not_found(ctx.iot.update_certificate, certificateId=certificate_id, newStatus="INACTIVE")
    ignore_not_found(ctx.iot.delete_certificate, certificateId=certificate_id, forceDelete=True)
