"""AWS IoT registry: names, attributes, deletions and principals as the AWS IoT API reference documents them.

moto 5.2.5 accepts thing names and attributes outside their documented patterns and any number of attributes,
overwrites an existing thing on CreateThing, keeps a deleted thing's group memberships for a new thing of the
same name, deletes thing types that are not deprecated or still in use, drops ``thingPrincipalType``, refuses
Cognito identities it does not know as policy targets, and fails DeleteCertificate when a policy is attached to
a thing group.
"""

from __future__ import annotations

import datetime
import functools
import os
import re
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iot.exceptions import (
    CertificateStateException,
    DeleteConflictException,
    InvalidRequestException,
    ResourceAlreadyExistsException,
)
from moto.iot.models import FakeCertificate, FakeThing, FakeThingType, IoTBackend
from moto.iot.responses import IoTResponse

from iot_dr_local.patching import Patches

# https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html (thingName),
# https://docs.aws.amazon.com/iot/latest/apireference/API_AttributePayload.html (attributes)
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
# 3 attributes without a thing type ("up to three name/value pairs":
# https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html), 50 with one
# (https://docs.aws.amazon.com/iot/latest/developerguide/thing-types.html).
MAX_ATTRIBUTES_UNTYPED = 3
MAX_ATTRIBUTES_TYPED = 50
# https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThingType.html: "Deprecate the thing type ...,
# wait at least five minutes, then delete."
THING_TYPE_DELETE_WAIT_ENV = "IOT_DR_LOCAL_THING_TYPE_DELETE_WAIT_SECONDS"
THING_TYPE_DELETE_WAIT_SECONDS = 300.0
# A Cognito identity ID: "<region>:<GUID>" (https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_GetId.html)
COGNITO_IDENTITY = re.compile(r"[\w-]+:[0-9a-f-]+")
THING_PRINCIPAL_TYPES = ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING")
_PRINCIPAL_TYPES_ATTRIBUTE = "_local_thing_principal_types"

_patches = Patches()


def thing_type_delete_wait() -> float:
    """Seconds a thing type must have been deprecated before DeleteThingType accepts it (AWS: 300)."""
    configured = os.environ.get(THING_TYPE_DELETE_WAIT_ENV)
    return float(configured) if configured else THING_TYPE_DELETE_WAIT_SECONDS


def _pattern_error(value: str, member: str, pattern: re.Pattern[str]) -> InvalidRequestException:
    return InvalidRequestException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern.pattern}"
    )


def validate_thing_name(name: str) -> None:
    """Raise ``InvalidRequestException`` for a name outside ``[a-zA-Z0-9:_-]{1,128}``."""
    if not THING_NAME.fullmatch(name or ""):
        raise _pattern_error(name, "thingName", THING_NAME)


def _validate_attributes(requested: dict[str, str], resulting: dict[str, str], typed: bool) -> None:
    """Patterns of the requested attributes, and the count of the attributes the thing ends up with."""
    for name, value in requested.items():
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise _pattern_error(name, "attributePayload.attributes", ATTRIBUTE_NAME)
        if not isinstance(value, str) or not ATTRIBUTE_VALUE.fullmatch(value):
            raise _pattern_error(str(value), f"attributePayload.attributes.{name}", ATTRIBUTE_VALUE)
    limit = MAX_ATTRIBUTES_TYPED if typed else MAX_ATTRIBUTES_UNTYPED
    kept = [name for name, value in resulting.items() if value]
    if len(kept) > limit:
        kind = "with" if typed else "without"
        raise InvalidRequestException(f"A thing {kind} a thing type can have at most {limit} attributes")


def _checked_create_thing(original: Callable[..., FakeThing]) -> Callable[..., FakeThing]:
    """Validated names and attributes; CreateThing of an existing thing is idempotent only if nothing differs.

    https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html: "If this call is made multiple
    times using the same thing name and configuration, the call will succeed. If this call is made with the same
    thing name but different configuration a ResourceAlreadyExistsException is thrown." moto 5.2.5 replaces the
    thing (new thingId, attachments and shadows orphaned).
    """

    @functools.wraps(original)
    def create_thing(
        backend: IoTBackend,
        thing_name: str,
        thing_type_name: str | None,
        attribute_payload: dict[str, Any] | None,
        billing_group_name: str | None = None,
    ) -> FakeThing:
        validate_thing_name(thing_name)
        attributes = (attribute_payload or {}).get("attributes") or {}
        _validate_attributes(attributes, attributes, typed=bool(thing_type_name))
        existing = next((thing for thing in backend.things.values() if thing.thing_name == thing_name), None)
        if existing is None:
            return original(backend, thing_name, thing_type_name, attribute_payload, billing_group_name)
        existing_type = existing.thing_type.thing_type_name if existing.thing_type else None
        same = (
            existing_type == (thing_type_name or None)
            and existing.attributes == attributes
            and existing.billing_group_name == billing_group_name
        )
        if same:
            return existing
        raise ResourceAlreadyExistsException(
            f"Thing {thing_name} already exists in account with different attributes", existing.thing_id, existing.arn
        )

    return create_thing


def _checked_update_thing(original: Callable[..., None]) -> Callable[..., None]:
    """Attribute patterns and the count limit apply to the attributes the thing will have after the update."""

    @functools.wraps(original)
    def update_thing(
        backend: IoTBackend,
        thing_name: str,
        thing_type_name: str,
        attribute_payload: dict[str, Any] | None,
        remove_thing_type: bool,
    ) -> None:
        thing = backend.describe_thing(thing_name)
        payload = attribute_payload or {}
        requested = payload.get("attributes")
        if requested is None:
            resulting: dict[str, str] = dict(thing.attributes)
        elif payload.get("merge"):
            resulting = {**thing.attributes, **requested}
        else:
            resulting = dict(requested)
        typed = bool(thing_type_name) or (thing.thing_type is not None and not remove_thing_type)
        _validate_attributes(requested or {}, resulting, typed)
        original(backend, thing_name, thing_type_name, attribute_payload, remove_thing_type)

    return update_thing


def _forgetting_delete_thing(original: Callable[..., None]) -> Callable[..., None]:
    """A deleted thing leaves its thing groups: a new thing of the same name starts with none.

    https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThing.html deletes the thing; group
    membership belongs to the deleted thing, not to its name.
    """

    @functools.wraps(original)
    def delete_thing(backend: IoTBackend, thing_name: str) -> None:
        thing = backend.describe_thing(thing_name)
        original(backend, thing_name)
        for group in backend.thing_groups.values():
            group.things.pop(thing.arn, None)
        for key in [key for key in _principal_types(backend) if key[1] == thing_name]:
            del _principal_types(backend)[key]

    return delete_thing


def _dated_deprecation(original: Callable[..., FakeThingType]) -> Callable[..., FakeThingType]:
    """Record ``deprecationDate`` in the type's metadata, as DescribeThingType returns it."""

    @functools.wraps(original)
    def deprecate_thing_type(backend: IoTBackend, thing_type_name: str, undo_deprecate: bool) -> FakeThingType:
        thing_type = original(backend, thing_type_name, undo_deprecate)
        if thing_type.metadata["deprecated"]:
            thing_type.metadata["deprecationDate"] = utcnow()
        else:
            thing_type.metadata.pop("deprecationDate", None)
        return thing_type

    return deprecate_thing_type


def _guarded_delete_thing_type(original: Callable[..., None]) -> Callable[..., None]:
    """DeleteThingType only for a type deprecated for ``thing_type_delete_wait()`` seconds and used by no thing.

    https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThingType.html
    """

    @functools.wraps(original)
    def delete_thing_type(backend: IoTBackend, thing_type_name: str) -> None:
        thing_type = backend.describe_thing_type(thing_type_name)
        deprecated_at = thing_type.metadata.get("deprecationDate")
        if not thing_type.metadata.get("deprecated") or deprecated_at is None:
            raise InvalidRequestException(f"Thing type {thing_type_name} must be deprecated before it is deleted")
        wait = datetime.timedelta(seconds=thing_type_delete_wait())
        if utcnow() - deprecated_at < wait:
            raise InvalidRequestException(
                f"Thing type {thing_type_name} can be deleted only {wait.total_seconds():.0f} s after its deprecation"
            )
        if any(thing.thing_type is thing_type for thing in backend.things.values()):
            raise InvalidRequestException(f"Thing type {thing_type_name} is still associated with things")
        original(backend, thing_type_name)

    return delete_thing_type


def _accepting_cognito_identities(original: Callable[..., Any]) -> Callable[..., Any]:
    """A Cognito identity ID is a valid policy target and thing principal, known to moto's Cognito or not.

    https://docs.aws.amazon.com/iot/latest/apireference/API_AttachPolicy.html and
    https://docs.aws.amazon.com/iot/latest/developerguide/cog-iot-policies.html attach policies to identity IDs.
    """

    @functools.wraps(original)
    def get_principal(backend: IoTBackend, principal_arn: str) -> Any:
        if ":cert/" not in principal_arn and COGNITO_IDENTITY.fullmatch(principal_arn):
            return {"IdentityId": principal_arn}
        return original(backend, principal_arn)

    return get_principal


def _validation_delete(backend: IoTBackend, cert: FakeCertificate, force_delete: bool = False) -> None:
    """DeleteCertificate checks only *this* certificate's attachments.

    moto resolves every attached principal and fails with AttributeError as soon as a policy is attached to a
    thing group (a group has no certificate ID), so no certificate could be deleted in such an account.
    """
    if cert.status == "ACTIVE":
        raise CertificateStateException(
            "Certificate must be deactivated (not ACTIVE) before deletion.", cert.certificate_id
        )
    if any(principal == cert.arn for principal, _ in backend.principal_things):
        raise DeleteConflictException(f"Things must be detached before deletion (arn: {cert.arn})")
    if not force_delete and any(principal == cert.arn for principal, _ in backend.principal_policies):
        raise DeleteConflictException(f"Certificate policies must be detached before deletion (arn: {cert.arn})")


# ------------------------------------------------------------------------------------- thingPrincipalType


def _principal_types(backend: IoTBackend) -> dict[tuple[str, str], str]:
    """(principal, thing name) -> thingPrincipalType, kept on the backend so a moto reset clears it."""
    types: dict[tuple[str, str], str] | None = backend.__dict__.get(_PRINCIPAL_TYPES_ATTRIBUTE)
    if types is None:
        types = {}
        setattr(backend, _PRINCIPAL_TYPES_ATTRIBUTE, types)
    return types


def _attach_thing_principal(response: IoTResponse) -> ActionResult:
    """AttachThingPrincipal with ``thingPrincipalType``: an exclusive principal belongs to one thing only.

    https://docs.aws.amazon.com/iot/latest/apireference/API_AttachThingPrincipal.html
    """
    backend = response.iot_backend
    thing_name = response._get_param("thingName")
    principal = response.headers.get("x-amzn-principal")
    principal_type = response._get_param("thingPrincipalType") or "NON_EXCLUSIVE_THING"
    if principal_type not in THING_PRINCIPAL_TYPES:
        raise InvalidRequestException(f"thingPrincipalType must be one of {', '.join(THING_PRINCIPAL_TYPES)}")
    others = [thing for attached, thing in backend.principal_things if attached == principal and thing != thing_name]
    types = _principal_types(backend)
    if others and (principal_type == "EXCLUSIVE_THING" or types.get((principal, others[0])) == "EXCLUSIVE_THING"):
        raise InvalidRequestException(
            f"Principal {principal} cannot be attached to {thing_name}: an exclusive attachment allows one thing only"
        )
    backend.attach_thing_principal(thing_name=thing_name, principal_arn=principal)
    types[(principal, thing_name)] = principal_type
    return EmptyResult()


def _detach_thing_principal(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def detach_thing_principal(backend: IoTBackend, thing_name: str, principal_arn: str) -> None:
        original(backend, thing_name, principal_arn)
        _principal_types(backend).pop((principal_arn, thing_name), None)

    return detach_thing_principal


def _list_thing_principals_v2(response: IoTResponse) -> ActionResult:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_ListThingPrincipalsV2.html"""
    backend = response.iot_backend
    thing_name = response._get_param("thingName")
    wanted = response._get_param("thingPrincipalType")
    types = _principal_types(backend)
    objects = [
        {"principal": principal, "thingPrincipalType": types.get((principal, thing_name), "NON_EXCLUSIVE_THING")}
        for principal in backend.list_thing_principals(thing_name)
    ]
    return ActionResult({"thingPrincipalObjects": [o for o in objects if wanted in (None, o["thingPrincipalType"])]})


def _list_principal_things_v2(response: IoTResponse) -> ActionResult:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_ListPrincipalThingsV2.html"""
    backend = response.iot_backend
    principal = response.headers.get("x-amzn-principal")
    wanted = response._get_param("thingPrincipalType")
    types = _principal_types(backend)
    objects = [
        {"thingName": thing, "thingPrincipalType": types.get((principal, thing), "NON_EXCLUSIVE_THING")}
        for thing in backend.list_principal_things(principal)
    ]
    return ActionResult({"principalThingObjects": [o for o in objects if wanted in (None, o["thingPrincipalType"])]})


def install() -> None:
    if _patches.applied:
        return
    _patches.set(IoTBackend, "_validation_delete", _validation_delete)
    _patches.wrap(IoTBackend, "create_thing", _checked_create_thing)
    _patches.wrap(IoTBackend, "update_thing", _checked_update_thing)
    _patches.wrap(IoTBackend, "delete_thing", _forgetting_delete_thing)
    _patches.wrap(IoTBackend, "deprecate_thing_type", _dated_deprecation)
    _patches.wrap(IoTBackend, "delete_thing_type", _guarded_delete_thing_type)
    _patches.wrap(IoTBackend, "_get_principal", _accepting_cognito_identities)
    _patches.wrap(IoTBackend, "detach_thing_principal", _detach_thing_principal)
    _patches.set(IoTResponse, "attach_thing_principal", _attach_thing_principal)
    _patches.set(IoTResponse, "list_thing_principals_v2", _list_thing_principals_v2)
    _patches.set(IoTResponse, "list_principal_things_v2", _list_principal_things_v2)


def uninstall() -> None:
    _patches.restore()
