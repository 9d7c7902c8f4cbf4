"""Things: registry THING_EVENTs, thing type associations and principal (certificate) attachments."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from iot_dr.core.arns import rewrite_region
from iot_dr.core.aws import error_code
from iot_dr.core.errors import DependencyNotReady, MalformedEvent
from iot_dr.secondary.ledger import LedgerEntry, Outcome, converge, order_key, order_parts
from iot_dr.secondary.replicate.context import (
    OPERATION_RANK,
    Secondary,
    certificate_id_of,
    deleted_since,
    describe_or_none,
    ignore_not_found,
    is_not_found,
    paginate,
    require,
    require_int,
    require_operation,
    thing_key,
)

LOG = logging.getLogger(__name__)

# Operation → whether the type is now associated. The developer guide's example names CREATED/DELETED while the
# event descriptions say ADDED/REMOVED; both are accepted.
ASSOCIATION_OPERATIONS = {"ADDED": True, "CREATED": True, "REMOVED": False, "DELETED": False}


def thing_supersedes(candidate_key: str, candidate_id: str | None, recorded: LedgerEntry) -> bool:
    """Whether a thing event supersedes the recorded one. Keys are (timestamp, versionNumber, operation rank).

    Within one thing's life (the same ``thingId``) the registry's ``versionNumber`` orders, then the operation,
    and the event timestamp only breaks ties. A deleted and re-created thing is a new life with a new
    ``thingId`` whose versions start again: lives are ordered by timestamp.
    """
    mine, theirs = order_parts(candidate_key), order_parts(recorded.order_key)
    if candidate_id and candidate_id == recorded.state.get("thingId"):
        return (mine[1], mine[2], mine[0]) > (theirs[1], theirs[2], theirs[0])
    return mine > theirs


def apply_thing_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """A registry event carries the thing's whole state at one version: make the secondary match it."""
    name = require(event, "thingName")
    operation = require_operation(event, OPERATION_RANK)
    state = {
        "exists": operation != "DELETED",
        "thingName": name,
        "thingId": event.get("thingId"),
        "thingTypeName": event.get("thingTypeName") or None,
        "attributes": dict(event.get("attributes") or {}),
    }
    key = order_key((require_int(event, "timestamp"), int(event.get("versionNumber") or 0), OPERATION_RANK[operation]))
    return converge(
        ctx.ledger,
        thing_key(name),
        key,
        state,
        lambda s: write_thing(ctx, s, create_first=operation == "CREATED"),
        newer=lambda entry: thing_supersedes(key, state["thingId"], entry),
    )


def apply_type_association(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Association events only patch the thing's type, and only if newer than what the ledger holds."""
    name = require(event, "thingName")
    type_name = require(event, "thingTypeName")
    operation = require_operation(event, ASSOCIATION_OPERATIONS)
    timestamp = require_int(event, "timestamp")
    while True:
        entry = ctx.ledger.read(thing_key(name))
        if entry is None:
            raise DependencyNotReady(f"thing {name} is not replicated yet")
        parts = order_parts(entry.order_key)
        if timestamp <= parts[0]:
            LOG.info("stale type association skipped", extra={"thingName": name, "thingTypeName": type_name})
            return Outcome.STALE
        if not entry.state["exists"] or entry.state.get("thingId") != event.get("thingId", entry.state["thingId"]):
            raise DependencyNotReady(f"thing {name} was re-created; its creation is not replicated yet")
        if ASSOCIATION_OPERATIONS[operation]:
            patched_type = type_name
        elif entry.state["thingTypeName"] == type_name:
            patched_type = None
        else:
            return Outcome.STALE
        state = {**entry.state, "thingTypeName": patched_type}
        key = order_key((timestamp, parts[1], OPERATION_RANK["UPDATED"]))
        if ctx.ledger.offer(thing_key(name), key, state, replaces=entry.order_key):
            return converge(ctx.ledger, thing_key(name), key, state, lambda s: write_thing(ctx, s))


def write_thing(ctx: Secondary, state: dict[str, Any], create_first: bool = False) -> None:
    """Make the secondary's thing match ``state`` (``exists``, ``thingName``, ``thingTypeName``, ``attributes``).

    With ``create_first`` (the state comes from a CREATED event) CreateThing is called without a DescribeThing
    first: it succeeds for a new thing and again for an identical one, and raises
    ``ResourceAlreadyExistsException`` when the thing exists with another configuration, which is then updated
    (https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html). Other states describe first, as
    the thing usually exists. Raises ``DependencyNotReady`` while the thing type is not replicated.
    """
    if not state["exists"]:
        delete_thing(ctx, state["thingName"])
        return
    name, type_name, attributes = state["thingName"], state["thingTypeName"], state["attributes"]
    if create_first and _created(ctx, name, type_name, attributes):
        return
    current = describe_or_none(ctx.iot.describe_thing, thingName=name)
    if current is None:
        if not create_first and _created(ctx, name, type_name, attributes):
            return
        # Created or deleted by someone else between the two calls: the retry sees a settled registry.
        raise DependencyNotReady(f"thing {name} changed while it was being written")
    update: dict[str, Any] = {"thingName": name}
    if (current.get("attributes") or {}) != attributes:
        update["attributePayload"] = {"attributes": attributes, "merge": False}
    if current.get("thingTypeName") != type_name:
        if type_name:
            update["thingTypeName"] = type_name
        else:
            update["removeThingType"] = True
    if len(update) > 1:
        _with_usable_type(ctx, update.get("thingTypeName"), lambda: ctx.iot.update_thing(**update))


def _created(ctx: Secondary, name: str, type_name: str | None, attributes: dict[str, str]) -> bool:
    """CreateThing; False if a thing of that name exists with another configuration."""
    request: dict[str, Any] = {"thingName": name, "attributePayload": {"attributes": attributes}}
    if type_name:
        request["thingTypeName"] = type_name
    try:
        _with_usable_type(ctx, type_name, lambda: ctx.iot.create_thing(**request))
    except Exception as err:
        if error_code(err) != "ResourceAlreadyExistsException":
            raise
        return False
    return True


def _with_usable_type(ctx: Secondary, type_name: str | None, action: Callable[[], object]) -> None:
    """Run ``action``, which assigns ``type_name`` to a thing.

    IoT refuses to assign a deprecated type, but in the primary the thing got the type before it was
    deprecated; the deprecation may simply have been replicated first. The type is undeprecated for the
    assignment and deprecated again right after.
    """
    if not type_name:
        action()
        return
    described = describe_or_none(ctx.iot.describe_thing_type, thingTypeName=type_name)
    if described is None:
        raise DependencyNotReady(f"thing type {type_name} is not replicated yet")
    if not described.get("thingTypeMetadata", {}).get("deprecated"):
        action()
        return
    ctx.iot.deprecate_thing_type(thingTypeName=type_name, undoDeprecate=True)
    try:
        action()
    finally:
        ctx.iot.deprecate_thing_type(thingTypeName=type_name, undoDeprecate=False)


def delete_thing(ctx: Secondary, name: str) -> None:
    """Delete the thing; its certificates are only detached (their deletion has its own event).

    Its shadows went with the DELETED event already (``delete_shadows_with_thing``).
    """
    if describe_or_none(ctx.iot.describe_thing, thingName=name) is None:
        return
    for principal in list(paginate(ctx.iot, "list_thing_principals", "principals", thingName=name)):
        ignore_not_found(ctx.iot.detach_thing_principal, thingName=name, principal=principal)
    ignore_not_found(ctx.iot.delete_thing, thingName=name)


def principals_key(thing_name: str) -> str:
    """The ledger key of a thing's certificate attachments, ``principals#<thing>``."""
    return f"principals#{thing_name}"


THING_PRINCIPAL_TYPES = ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING")


def _attachments(event: dict[str, Any]) -> dict[str, str]:
    """``principals`` of a THING_PRINCIPALS_EVENT as {certificate ARN in the primary: thingPrincipalType}."""
    principals = event.get("principals")
    if not isinstance(principals, list) or not all(isinstance(p, dict) for p in principals):
        raise MalformedEvent("THING_PRINCIPALS_EVENT needs a list of {principal, thingPrincipalType} in 'principals'")
    attachments = {}
    for attachment in principals:
        arn, kind = str(require(attachment, "principal")), attachment.get("thingPrincipalType", "NON_EXCLUSIVE_THING")
        if not certificate_id_of(arn) or kind not in THING_PRINCIPAL_TYPES:
            raise MalformedEvent(f"not a certificate attachment: {attachment!r}")
        attachments[arn] = kind
    return attachments


def apply_thing_principals(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """A snapshot of the certificates attached to a thing in the primary at ``capturedAt``, with their type."""
    name = require(event, "thingName")
    captured_at = require_int(event, "capturedAt")
    state = {
        "thingName": name,
        "exists": bool(event.get("exists", True)),
        "principals": _attachments(event),
        "capturedAt": captured_at,
    }
    return converge(
        ctx.ledger, principals_key(name), order_key((captured_at,)), state, lambda s: write_principals(ctx, s)
    )


def write_principals(ctx: Secondary, state: dict[str, Any], fresh: bool = False) -> None:
    """Attach exactly the primary's certificates, each with its attachment type; detach the others.

    ``fresh``: the caller has just created the thing, so nothing is attached to it and its attachments are not
    listed."""
    name, captured_at = state["thingName"], state["capturedAt"]
    # A snapshot taken after the thing was deleted in the primary means "nothing attached": what the secondary's thing
    # has now came from older snapshots, maybe of an earlier incarnation of the name (a thing deleted and re-created,
    # its events applied out of order), so it is detached; a later incarnation's attachments come with later snapshots.
    wanted = (
        {rewrite_region(arn, ctx.primary_region, ctx.region): kind for arn, kind in state["principals"].items()}
        if state["exists"]
        else {}
    )
    attached: dict[str, str] = {}
    try:
        if not fresh:
            attached = {
                item["principal"]: item.get("thingPrincipalType") or "NON_EXCLUSIVE_THING"
                for item in paginate(ctx.iot, "list_thing_principals_v2", "thingPrincipalObjects", thingName=name)
                if certificate_id_of(item["principal"])
            }
    except Exception as err:
        if not is_not_found(err):
            raise
        if not state["exists"] or deleted_since(ctx.ledger, thing_key(name), captured_at):
            return
        raise DependencyNotReady(f"thing {name} is not replicated yet") from err
    for arn, kind in attached.items():
        if wanted.get(arn) != kind:
            ignore_not_found(ctx.iot.detach_thing_principal, thingName=name, principal=arn)
    missing = []
    for arn, kind in wanted.items():
        if attached.get(arn) == kind:
            continue
        try:
            ctx.iot.attach_thing_principal(thingName=name, principal=arn, thingPrincipalType=kind)
        except Exception as err:
            if not is_not_found(err):
                raise
            if describe_or_none(ctx.iot.describe_thing, thingName=name) is None:
                if deleted_since(ctx.ledger, thing_key(name), captured_at):
                    return
                raise DependencyNotReady(f"thing {name} is not replicated yet") from err
            if not deleted_since(ctx.ledger, f"certificate#{certificate_id_of(arn)}", captured_at):
                missing.append(certificate_id_of(arn))
    if missing:
        raise DependencyNotReady(f"certificates {missing} of thing {name} are not replicated yet")
