"""IoT policies (all versions, the same default) and the policies attached to certificates and thing groups."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from iot_dr.core.arns import Arn, rewrite_policy_document, rewrite_region
from iot_dr.core.aws import error_code
from iot_dr.core.errors import DependencyNotReady, MalformedEvent, TransientReplicationError, UnsupportedEvent
from iot_dr.secondary.ledger import Outcome, converge, order_key
from iot_dr.secondary.replicate.certificates import certificate_key
from iot_dr.secondary.replicate.context import (
    Secondary,
    deleted_since,
    describe_or_none,
    ignore_not_found,
    is_not_found,
    paginate,
    require,
    require_int,
)
from iot_dr.secondary.replicate.thing_groups import group_key

LOG = logging.getLogger(__name__)

MAX_POLICY_VERSIONS = 5
# AttachPolicy's target is an ARN or a Cognito identity ID ("<region>:<uuid>"):
# https://docs.aws.amazon.com/iot/latest/apireference/API_AttachPolicy.html
COGNITO_IDENTITY_ID = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]:[0-9a-f-]{36}$")


# What a concurrent execution for the same policy can cause between our list and our write.
_CONCURRENT_CHANGE = frozenset(
    {
        "ResourceNotFoundException",
        "VersionsLimitExceededException",
        "DeleteConflictException",
        "VersionConflictException",
    }
)


def policy_key(name: str) -> str:
    """The ledger key of a policy, ``policy#<name>``."""
    return f"policy#{name}"


def apply_policy_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Apply a POLICY_EVENT (``policyName``, ``capturedAt`` ms, ``exists``, ``versions``: [{versionId, isDefault,
    document}]) unless a newer one was applied; raises ``MalformedEvent`` unless exactly one version is default."""
    name = require(event, "policyName")
    exists = bool(event.get("exists", True))
    versions = event.get("versions") or []
    if exists and (not versions or sum(1 for v in versions if v.get("isDefault")) != 1):
        raise MalformedEvent(f"policy {name} needs its versions with exactly one default")
    state = {
        "exists": exists,
        "policyName": name,
        "versions": [
            {"document": require(v, "document"), "isDefault": bool(v.get("isDefault"))}
            for v in sorted(versions, key=lambda v: int(v.get("versionId") or 0))
        ],
    }
    key = order_key((require_int(event, "capturedAt"),))
    return converge(ctx.ledger, policy_key(name), key, state, lambda s: write_policy(ctx, s))


def _canonical(document: str) -> str:
    return json.dumps(json.loads(document), sort_keys=True)


def write_policy(ctx: Secondary, state: dict[str, Any], create_first: bool = False) -> None:
    """Make the secondary's policy match ``state`` (``exists``, ``policyName``, ``versions``: [{document,
    isDefault}]): its versions with the primary region's ARNs rewritten to the secondary's, the same default, or the
    policy detached and deleted (https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicyVersion.html).

    With ``create_first`` (the caller expects the policy to be new, as a sync of a device missing in the secondary
    does) CreatePolicy is called without a GetPolicy first; a policy it creates with its only version needs
    nothing more, and one that exists already (``ResourceAlreadyExistsException``,
    https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicy.html) gets its versions compared.
    """
    name = state["policyName"]
    if not state["exists"]:
        if describe_or_none(ctx.iot.get_policy, policyName=name) is not None:
            _delete_policy(ctx, name)
        return
    documents = [
        _canonical(rewrite_policy_document(v["document"], ctx.primary_region, ctx.region)) for v in state["versions"]
    ]
    default = documents[[v["isDefault"] for v in state["versions"]].index(True)]
    if create_first:
        if _created(ctx, name, default) and set(documents) == {default}:
            return
    elif describe_or_none(ctx.iot.get_policy, policyName=name) is None:
        # Another execution for the same policy may be writing other versions meanwhile: always compared after.
        _created(ctx, name, default)
    _sync_versions(ctx, name, set(documents), default)


def _created(ctx: Secondary, name: str, document: str) -> bool:
    """CreatePolicy with ``document`` as its first (default) version; False if the policy exists already."""
    try:
        ctx.iot.create_policy(policyName=name, policyDocument=document)
    except Exception as err:
        if error_code(err) != "ResourceAlreadyExistsException":
            raise
        return False
    return True


def _existing_versions(ctx: Secondary, name: str) -> dict[str, tuple[str, bool]]:
    """``{versionId: (canonical document, isDefault)}``; a version deleted meanwhile (by a concurrent execution for
    the same policy: Express workflows run side by side) is simply not there."""
    existing = {}
    for version in ctx.iot.list_policy_versions(policyName=name)["policyVersions"]:
        read = describe_or_none(ctx.iot.get_policy_version, policyName=name, policyVersionId=version["versionId"])
        if read is not None:
            existing[version["versionId"]] = (_canonical(read["policyDocument"]), bool(version["isDefaultVersion"]))
    return existing


def _drop_unwanted(ctx: Secondary, name: str, wanted: set[str]) -> dict[str, tuple[str, bool]]:
    """Delete non-default versions the primary does not have, and second copies of a document (two executions
    that created the same version at once); returns the versions left."""
    existing = _existing_versions(ctx, name)
    kept = {document for document, is_default in existing.values() if is_default}
    for version_id, (document, is_default) in sorted(existing.items(), key=lambda item: int(item[0])):
        if is_default:
            continue
        if document in wanted and document not in kept:
            kept.add(document)
            continue
        ignore_not_found(ctx.iot.delete_policy_version, policyName=name, policyVersionId=version_id)
        del existing[version_id]
    return existing


def _sync_versions(ctx: Secondary, name: str, wanted: set[str], default: str) -> None:
    """Same set of documents and the same default as the primary; version IDs themselves cannot be chosen.

    Unwanted versions go first (IoT keeps at most five), then the default is switched, then the former
    default can go too. Raises TransientReplicationError when a concurrent execution for the same policy changed
    the versions meanwhile, so the workflow retries and the ledger's newest state wins.
    """
    try:
        existing = _drop_unwanted(ctx, name, wanted)
        by_document = {document: version_id for version_id, (document, _) in existing.items()}
        if default not in by_document:
            ctx.iot.create_policy_version(policyName=name, policyDocument=default, setAsDefault=True)
        elif not existing[by_document[default]][1]:
            ctx.iot.set_default_policy_version(policyName=name, policyVersionId=by_document[default])
        present = {document for document, _ in _drop_unwanted(ctx, name, wanted).values()}
        for document in sorted(wanted - present):
            if len(present) >= MAX_POLICY_VERSIONS:
                raise MalformedEvent(f"policy {name} would exceed {MAX_POLICY_VERSIONS} versions")
            ctx.iot.create_policy_version(policyName=name, policyDocument=document, setAsDefault=False)
            present.add(document)
        # A concurrent execution may have created the same versions meanwhile: a last pass drops second copies, and
        # anything still different from the wanted set is retried.
        final = [document for document, _ in _drop_unwanted(ctx, name, wanted).values()]
        if len(final) != len(set(final)) or set(final) != wanted:
            raise TransientReplicationError(f"policy {name} changed while it was written")
    except Exception as err:
        if error_code(err) in _CONCURRENT_CHANGE:
            raise TransientReplicationError(f"policy {name} changed while it was written: {err}") from err
        raise


def _delete_policy(ctx: Secondary, name: str) -> None:
    """The primary deleted the policy, so every attachment left here is stale: detach, then delete."""
    for target in list(paginate(ctx.iot, "list_targets_for_policy", "targets", policyName=name)):
        ignore_not_found(ctx.iot.detach_policy, policyName=name, target=target)
    for version in ctx.iot.list_policy_versions(policyName=name)["policyVersions"]:
        if not version["isDefaultVersion"]:
            ignore_not_found(ctx.iot.delete_policy_version, policyName=name, policyVersionId=version["versionId"])
    ignore_not_found(ctx.iot.delete_policy, policyName=name)


def apply_policy_targets_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """A snapshot of the policies attached to one target (certificate or thing group) in the primary."""
    target = require(event, "target")
    if COGNITO_IDENTITY_ID.match(str(target)):
        raise UnsupportedEvent(f"policies attached to Cognito identities are not replicated: {target}")
    try:
        arn = Arn.parse(target)
    except ValueError as err:
        raise MalformedEvent(f"policy target is neither an ARN nor a Cognito identity ID: {target!r}") from err
    if arn.resource_type not in ("cert", "thinggroup"):
        raise UnsupportedEvent(f"policies attached to {arn.resource_type} targets are not replicated")
    policies = event.get("policies")
    if not isinstance(policies, list):
        raise MalformedEvent("POLICY_TARGETS_EVENT needs a list of policy names in 'policies'")
    captured_at = require_int(event, "capturedAt")
    state = {"target": target, "policies": sorted(policies), "capturedAt": captured_at}
    return converge(
        ctx.ledger, f"targets#{target}", order_key((captured_at,)), state, lambda s: write_policy_targets(ctx, s)
    )


def write_policy_targets(ctx: Secondary, state: dict[str, Any], fresh: bool = False) -> None:
    """Attach exactly the primary's policies to the target; its presence is only checked when an attach fails.

    ``fresh``: the caller has just created the target, so nothing is attached to it and its attachments are not
    listed."""
    primary_arn = Arn.parse(state["target"])
    target = rewrite_region(state["target"], ctx.primary_region, ctx.region)
    captured_at = state["capturedAt"]
    attached: set[str] = set()
    try:
        if not fresh:
            attached = {p["policyName"] for p in paginate(ctx.iot, "list_attached_policies", "policies", target=target)}
    except Exception as err:
        if not is_not_found(err):
            raise
    missing = []
    for name in state["policies"]:
        if name in attached:
            continue
        try:
            ctx.iot.attach_policy(policyName=name, target=target)
        except Exception as err:
            if not is_not_found(err):
                raise
            if not _target_present(ctx, primary_arn):
                if deleted_since(ctx.ledger, _target_key(primary_arn), captured_at):
                    return
                raise DependencyNotReady(f"policy target {target} is not replicated yet") from err
            if not deleted_since(ctx.ledger, policy_key(name), captured_at):
                missing.append(name)
    for name in attached - set(state["policies"]):
        ignore_not_found(ctx.iot.detach_policy, policyName=name, target=target)
    if missing:
        raise DependencyNotReady(f"policies {missing} for {target} are not replicated yet")


def _target_key(arn: Arn) -> str:
    return certificate_key(arn.resource_id) if arn.resource_type == "cert" else group_key(arn.resource_id)


def _target_present(ctx: Secondary, arn: Arn) -> bool:
    if arn.resource_type == "cert":
        return describe_or_none(ctx.iot.describe_certificate, certificateId=arn.resource_id) is not None
    return describe_or_none(ctx.iot.describe_thing_group, thingGroupName=arn.resource_id) is not None
