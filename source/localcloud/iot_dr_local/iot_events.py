"""The messages AWS IoT publishes about its own resources: registry events, shadow messages, JITR.

moto changes the registry but publishes nothing. Here every successful registry call publishes the
documented registry events through the rules engine, but only for the event types enabled in that region
(``UpdateEventConfigurations``, implemented here because moto lacks it). Shadow updates and deletes publish
the Device Shadow service's ``update/accepted``, ``update/documents`` and ``delete/accepted`` messages,
which need no configuration. Registering a certificate signed by a registered CA with status
PENDING_ACTIVATION publishes the just-in-time registration event, standing in for the device's first
connection.

Events are built while the API call holds the service lock (so they show the state the call produced)
and are published from the dispatcher after the call has returned. Timestamps are milliseconds from
one clock that never repeats or goes back, so successive events of a resource are ordered as AWS stamps
them.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iot.exceptions import InvalidRequestException
from moto.iot.models import FakeThing, FakeThingGroup, FakeThingType, IoTBackend
from moto.iot.responses import IoTResponse
from moto.iotdata.models import FakeShadow, IoTDataPlaneBackend

from iot_dr_local.moto_fixes.iot_shadows import stored_shadow
from iot_dr_local.patching import Patches
from iot_dr_local.rules_engine import RulesEngine

EVENT_TYPES = (
    "THING",
    "THING_GROUP",
    "THING_TYPE",
    "THING_GROUP_MEMBERSHIP",
    "THING_GROUP_HIERARCHY",
    "THING_TYPE_ASSOCIATION",
    "JOB",
    "JOB_EXECUTION",
    "POLICY",
    "CERTIFICATE",
    "CA_CERTIFICATE",
)
_CONFIGURATION_ATTRIBUTE = "_local_event_configurations"


@dataclass(frozen=True)
class Emission:
    """One message to publish; ``gate`` is the event type that must be enabled (None: always published)."""

    gate: str | None
    topic: str
    payload: dict[str, Any]


class EventClock:
    """Epoch milliseconds that strictly increase, even for events raised within one millisecond."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            self._last = max(int(time.time() * 1000), self._last + 1)
            return self._last


# ----------------------------------------------------------------------------- event configurations


@dataclass
class EventConfigurations:
    enabled: dict[str, bool]
    creation_date: datetime.datetime
    last_modified_date: datetime.datetime


def event_configurations(backend: IoTBackend) -> EventConfigurations:
    """The region's configuration, kept on the moto backend so a moto reset clears it too."""
    configurations: EventConfigurations | None = backend.__dict__.get(_CONFIGURATION_ATTRIBUTE)
    if configurations is None:
        now = utcnow()
        configurations = EventConfigurations({name: False for name in EVENT_TYPES}, now, now)
        setattr(backend, _CONFIGURATION_ATTRIBUTE, configurations)
    return configurations


def _describe_event_configurations(backend: IoTBackend) -> dict[str, Any]:
    configurations = event_configurations(backend)
    return {
        "eventConfigurations": {name: {"Enabled": on} for name, on in configurations.enabled.items()},
        "creationDate": configurations.creation_date,
        "lastModifiedDate": configurations.last_modified_date,
    }


def _update_event_configurations(backend: IoTBackend, changes: dict[str, Any]) -> None:
    configurations = event_configurations(backend)
    for name, setting in changes.items():
        if name not in EVENT_TYPES:
            raise InvalidRequestException(f"{name} is not an event type")
        enabled = setting.get("Enabled") if isinstance(setting, dict) else None
        if not isinstance(enabled, bool):
            raise InvalidRequestException(f"eventConfigurations.{name}.Enabled must be a boolean")
        configurations.enabled[name] = enabled
    configurations.last_modified_date = utcnow()


def _describe_response(response: IoTResponse) -> ActionResult:
    return ActionResult(response.iot_backend.describe_event_configurations())


def _update_response(response: IoTResponse) -> ActionResult:
    response.iot_backend.update_event_configurations(response._get_param("eventConfigurations") or {})
    return EmptyResult()


# ------------------------------------------------------------------------------------------- lookups


def _thing_named(backend: IoTBackend, name: str) -> FakeThing | None:
    return next((thing for thing in backend.things.values() if thing.thing_name == name), None)


def _group_named(backend: IoTBackend, name: str | None) -> FakeThingGroup | None:
    return next((group for group in backend.thing_groups.values() if group.thing_group_name == name), None)


def _type_named(backend: IoTBackend, name: str) -> FakeThingType | None:
    return next((kind for kind in backend.thing_types.values() if kind.thing_type_name == name), None)


def _type_name(thing: FakeThing) -> str | None:
    return thing.thing_type.thing_type_name if thing.thing_type else None


def _epoch_ms(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def _issuing_ca(backend: IoTBackend, certificate_pem: str) -> str | None:
    """The registered CA that signed the certificate (AWS finds it even without ``caCertificatePem``)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    for ca in backend.ca_certificates.values():
        try:
            certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.certificate_pem.encode()))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return str(ca.certificate_id)
    return None


# ------------------------------------------------------------------------------------------ fixes


def _versioned_update_thing(original: Callable[..., None]) -> Callable[..., None]:
    """Every successful UpdateThing increments the thing's version (moto leaves it at 1)."""

    @functools.wraps(original)
    def update_thing(backend: IoTBackend, thing_name: str, *args: Any, **kwargs: Any) -> None:
        original(backend, thing_name, *args, **kwargs)
        thing = backend.describe_thing(thing_name)
        thing.version += 1

    return update_thing


# --------------------------------------------------------------------------------------- publisher

Before = Callable[[Any, dict[str, Any]], Any]
After = Callable[[Any, Any, Any, dict[str, Any]], Iterable[Emission]]


class IotEvents:
    """Installed registry events, shadow messages and JITR events; ``uninstall`` gives moto its code back."""

    def __init__(self, engine: RulesEngine) -> None:
        self._engine = engine
        self._clock = EventClock()
        self._memberships: dict[tuple[str, str], str] = {}
        self._patches = Patches()

    # ---------------------------------------------------------------------------------- wiring

    def install(self) -> None:
        patches = self._patches
        patches.set(IoTBackend, "describe_event_configurations", _describe_event_configurations)
        patches.set(IoTBackend, "update_event_configurations", _update_event_configurations)
        patches.set(IoTResponse, "describe_event_configurations", _describe_response)
        patches.set(IoTResponse, "update_event_configurations", _update_response)
        patches.wrap(IoTBackend, "update_thing", _versioned_update_thing)

        self._observe(IoTBackend, "create_thing", self._thing_before, self._thing_created)
        self._observe(IoTBackend, "update_thing", self._thing_before, self._thing_updated)
        self._observe(IoTBackend, "delete_thing", self._thing_before, self._thing_deleted)
        self._observe(IoTBackend, "create_thing_type", _nothing, self._thing_type_created)
        self._observe(IoTBackend, "deprecate_thing_type", _nothing, self._thing_type_deprecated)
        self._observe(IoTBackend, "delete_thing_type", self._thing_type_before, self._thing_type_deleted)
        self._observe(IoTBackend, "create_thing_group", self._group_before, self._group_created)
        self._observe(IoTBackend, "update_thing_group", self._group_before, self._group_updated)
        self._observe(IoTBackend, "delete_thing_group", self._group_before, self._group_deleted)
        self._observe(IoTBackend, "add_thing_to_thing_group", self._membership_before, self._thing_added)
        self._observe(IoTBackend, "remove_thing_from_thing_group", self._membership_before, self._thing_removed)
        self._observe(IoTBackend, "register_certificate", _nothing, self._certificate_registered)
        self._observe(IoTDataPlaneBackend, "update_thing_shadow", self._shadow_before, self._shadow_updated)
        self._observe(IoTDataPlaneBackend, "delete_thing_shadow", self._shadow_before, self._shadow_deleted)

    def uninstall(self) -> None:
        global _installed
        self._patches.restore()
        _installed = None

    def _observe(self, owner: type, name: str, before: Before, after: After) -> None:
        """Wrap a moto method: snapshot with ``before``, call it, publish what ``after`` builds if it succeeded."""
        signature = inspect.signature(getattr(owner, name))
        events = self

        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def observed(backend: Any, *args: Any, **kwargs: Any) -> Any:
                bound = signature.bind(backend, *args, **kwargs)
                bound.apply_defaults()
                state = before(backend, bound.arguments)
                result = original(backend, *args, **kwargs)
                for emission in after(backend, state, result, bound.arguments):
                    events._emit(backend, emission)
                return result

            return observed

        self._patches.wrap(owner, name, make)

    def _emit(self, backend: IoTBackend | IoTDataPlaneBackend, emission: Emission) -> None:
        registry = backend if isinstance(backend, IoTBackend) else backend.iot_backend
        if emission.gate is not None and not event_configurations(registry).enabled[emission.gate]:
            return
        payload = json.dumps(emission.payload).encode()
        self._engine.publish(backend.account_id, backend.region_name, emission.topic, payload)

    def _header(self, event_type: str, operation: str) -> dict[str, Any]:
        return {
            "eventType": event_type,
            "eventId": str(uuid.uuid4()),
            "timestamp": self._clock.now_ms(),
            "operation": operation,
        }

    # ------------------------------------------------------------------------------------ things

    @staticmethod
    def _thing_before(backend: IoTBackend, call: dict[str, Any]) -> tuple[FakeThing | None, str | None]:
        thing = _thing_named(backend, call["thing_name"])
        return thing, (_type_name(thing) if thing else None)

    def _thing_event(self, backend: IoTBackend, thing: FakeThing, operation: str) -> Emission:
        payload = self._header("THING_EVENT", operation) | {
            "accountId": backend.account_id,
            "thingId": thing.thing_id,
            "thingName": thing.thing_name,
            "versionNumber": thing.version,
            "thingTypeName": _type_name(thing),
            "attributes": dict(thing.attributes),
        }
        return Emission("THING", f"$aws/events/thing/{thing.thing_name}/{operation.lower()}", payload)

    def _association(self, thing: FakeThing, type_name: str, operation: str) -> Emission:
        payload = self._header("THING_TYPE_ASSOCIATION_EVENT", operation) | {
            "thingId": thing.thing_id,
            "thingName": thing.thing_name,
            "thingTypeName": type_name,
        }
        topic = f"$aws/events/thingTypeAssociation/thing/{thing.thing_name}/{type_name}"
        return Emission("THING_TYPE_ASSOCIATION", topic, payload)

    def _thing_created(
        self, backend: IoTBackend, before: tuple[FakeThing | None, str | None], thing: FakeThing, call: dict[str, Any]
    ) -> list[Emission]:
        if before[0] is not None:
            return []
        emissions = [self._thing_event(backend, thing, "CREATED")]
        if thing.thing_type:
            emissions.append(self._association(thing, thing.thing_type.thing_type_name, "ADDED"))
        return emissions

    def _thing_updated(
        self, backend: IoTBackend, before: tuple[FakeThing | None, str | None], _: None, call: dict[str, Any]
    ) -> list[Emission]:
        thing = backend.describe_thing(call["thing_name"])
        emissions = [self._thing_event(backend, thing, "UPDATED")]
        old_type, new_type = before[1], _type_name(thing)
        if old_type != new_type:
            if old_type:
                emissions.append(self._association(thing, old_type, "REMOVED"))
            if new_type:
                emissions.append(self._association(thing, new_type, "ADDED"))
        return emissions

    def _thing_deleted(
        self, backend: IoTBackend, before: tuple[FakeThing | None, str | None], _: None, call: dict[str, Any]
    ) -> list[Emission]:
        thing = before[0]
        return [self._thing_event(backend, thing, "DELETED")] if thing is not None else []

    # ------------------------------------------------------------------------------- thing types

    def _thing_type_event(self, backend: IoTBackend, thing_type: FakeThingType, operation: str) -> Emission:
        properties = thing_type.thing_type_properties or {}
        deprecated_at = thing_type.metadata.get("deprecationDate")
        payload = self._header("THING_TYPE_EVENT", operation) | {
            "accountId": backend.account_id,
            "thingTypeId": thing_type.thing_type_id,
            "thingTypeName": thing_type.thing_type_name,
            "isDeprecated": bool(thing_type.metadata["deprecated"]),
            "deprecationDate": _epoch_ms(deprecated_at) if deprecated_at else None,
            "searchableAttributes": list(properties.get("searchableAttributes", [])),
            "description": properties.get("thingTypeDescription"),
        }
        topic = f"$aws/events/thingType/{thing_type.thing_type_name}/{operation.lower()}"
        return Emission("THING_TYPE", topic, payload)

    @staticmethod
    def _thing_type_before(backend: IoTBackend, call: dict[str, Any]) -> FakeThingType | None:
        return _type_named(backend, call["thing_type_name"])

    def _thing_type_created(
        self, backend: IoTBackend, _: None, result: tuple[str, str], call: dict[str, Any]
    ) -> list[Emission]:
        return [self._thing_type_event(backend, backend.thing_types[result[1]], "CREATED")]

    def _thing_type_deprecated(
        self, backend: IoTBackend, _: None, thing_type: FakeThingType, call: dict[str, Any]
    ) -> list[Emission]:
        return [self._thing_type_event(backend, thing_type, "UPDATED")]

    def _thing_type_deleted(
        self, backend: IoTBackend, thing_type: FakeThingType | None, _: None, call: dict[str, Any]
    ) -> list[Emission]:
        return [self._thing_type_event(backend, thing_type, "DELETED")] if thing_type else []

    # ------------------------------------------------------------------------------ thing groups

    @staticmethod
    def _group_before(backend: IoTBackend, call: dict[str, Any]) -> FakeThingGroup | None:
        return _group_named(backend, call["thing_group_name"])

    def _group_event(self, backend: IoTBackend, group: FakeThingGroup, operation: str) -> Emission:
        properties = group.thing_group_properties or {}
        parent = _group_named(backend, group.parent_group_name)
        ancestors = group.metadata.get("rootToParentThingGroups", [])
        payload = self._header("THING_GROUP_EVENT", operation) | {
            "accountId": backend.account_id,
            "thingGroupId": group.thing_group_id,
            "thingGroupName": group.thing_group_name,
            "versionNumber": group.version,
            "parentGroupName": group.parent_group_name or None,
            "parentGroupId": parent.thing_group_id if parent else None,
            "description": properties.get("thingGroupDescription"),
            "rootToParentThingGroups": [
                {"groupArn": entry["groupArn"], "groupId": backend.thing_groups[entry["groupArn"]].thing_group_id}
                for entry in ancestors
                if entry["groupArn"] in backend.thing_groups
            ],
            "attributes": dict(properties.get("attributePayload", {}).get("attributes", {})),
            "dynamicGroupMappingId": None,
        }
        topic = f"$aws/events/thingGroup/{group.thing_group_name}/{operation.lower()}"
        return Emission("THING_GROUP", topic, payload)

    def _hierarchy_event(self, backend: IoTBackend, child: FakeThingGroup, operation: str) -> Emission:
        parent = _group_named(backend, child.parent_group_name)
        payload = self._header("THING_GROUP_HIERARCHY_EVENT", operation) | {
            "accountId": backend.account_id,
            "thingGroupId": parent.thing_group_id if parent else None,
            "thingGroupName": child.parent_group_name,
            "childGroupId": child.thing_group_id,
            "childGroupName": child.thing_group_name,
        }
        topic = (
            f"$aws/events/thingGroupHierarchy/thingGroup/{child.parent_group_name}"
            f"/childThingGroup/{child.thing_group_name}/{operation.lower()}"
        )
        return Emission("THING_GROUP_HIERARCHY", topic, payload)

    def _group_created(
        self, backend: IoTBackend, existing: FakeThingGroup | None, result: tuple[str, str, str], call: dict[str, Any]
    ) -> list[Emission]:
        if existing is not None:
            return []
        group = backend.thing_groups[result[1]]
        emissions = [self._group_event(backend, group, "CREATED")]
        if group.parent_group_name:
            emissions.append(self._hierarchy_event(backend, group, "ADDED"))
        return emissions

    def _group_updated(
        self, backend: IoTBackend, group: FakeThingGroup, _: int, call: dict[str, Any]
    ) -> list[Emission]:
        return [self._group_event(backend, group, "UPDATED")]

    def _group_deleted(
        self, backend: IoTBackend, group: FakeThingGroup | None, _: None, call: dict[str, Any]
    ) -> list[Emission]:
        if group is None:
            return []
        emissions = [self._group_event(backend, group, "DELETED")]
        if group.parent_group_name:
            emissions.append(self._hierarchy_event(backend, group, "REMOVED"))
        return emissions

    # ------------------------------------------------------------------------------- memberships

    @staticmethod
    def _membership_before(backend: IoTBackend, call: dict[str, Any]) -> tuple[FakeThingGroup, FakeThing, bool]:
        group = backend._identify_thing_group(call["thing_group_name"], call["thing_group_arn"])
        thing = backend._identify_thing(call["thing_name"], call["thing_arn"])
        return group, thing, thing.arn in group.things

    def _membership_event(
        self, backend: IoTBackend, group: FakeThingGroup, thing: FakeThing, operation: str, membership_id: str
    ) -> Emission:
        payload = self._header("THING_GROUP_MEMBERSHIP_EVENT", operation) | {
            "accountId": backend.account_id,
            "groupArn": group.arn,
            "groupId": group.thing_group_id,
            "thingArn": thing.arn,
            "thingId": thing.thing_id,
            "membershipId": membership_id,
        }
        topic = (
            f"$aws/events/thingGroupMembership/thingGroup/{group.thing_group_name}"
            f"/thing/{thing.thing_name}/{operation.lower()}"
        )
        return Emission("THING_GROUP_MEMBERSHIP", topic, payload)

    def _thing_added(
        self, backend: IoTBackend, before: tuple[FakeThingGroup, FakeThing, bool], _: None, call: dict[str, Any]
    ) -> list[Emission]:
        group, thing, was_member = before
        if was_member:
            return []
        membership_id = str(uuid.uuid4())
        self._memberships[(group.thing_group_id, thing.thing_id)] = membership_id
        return [self._membership_event(backend, group, thing, "ADDED", membership_id)]

    def _thing_removed(
        self, backend: IoTBackend, before: tuple[FakeThingGroup, FakeThing, bool], _: None, call: dict[str, Any]
    ) -> list[Emission]:
        group, thing, was_member = before
        if not was_member:
            return []
        membership_id = self._memberships.pop((group.thing_group_id, thing.thing_id), str(uuid.uuid4()))
        return [self._membership_event(backend, group, thing, "REMOVED", membership_id)]

    # ------------------------------------------------------------------------------ certificates

    def _certificate_registered(
        self, backend: IoTBackend, _: None, certificate: Any, call: dict[str, Any]
    ) -> list[Emission]:
        if certificate.ca_certificate_id is None:
            certificate.ca_certificate_id = _issuing_ca(backend, certificate.certificate_pem)
        if certificate.ca_certificate_id is None or certificate.status != "PENDING_ACTIVATION":
            return []
        now = self._clock.now_ms()
        payload = {
            "certificateId": certificate.certificate_id,
            "caCertificateId": certificate.ca_certificate_id,
            "timestamp": now,
            "certificateStatus": certificate.status,
            "awsAccountId": backend.account_id,
            "certificateRegistrationTimestamp": str(now),
        }
        return [Emission(None, f"$aws/events/certificates/registered/{certificate.ca_certificate_id}", payload)]

    # ----------------------------------------------------------------------------------- shadows

    @staticmethod
    def _shadow_before(backend: IoTDataPlaneBackend, call: dict[str, Any]) -> FakeShadow | None:
        return stored_shadow(backend, call["thing_name"], call["shadow_name"])

    @staticmethod
    def _shadow_prefix(call: dict[str, Any]) -> str:
        name = call["shadow_name"]
        suffix = f"/name/{name}" if name is not None else ""
        return f"$aws/things/{call['thing_name']}/shadow{suffix}"

    @staticmethod
    def _document(shadow: FakeShadow) -> dict[str, Any]:
        full = shadow.to_dict(include_delta=False)
        return {"state": full["state"], "metadata": full["metadata"], "version": shadow.version}

    def _shadow_updated(
        self, backend: IoTDataPlaneBackend, previous: FakeShadow | None, current: FakeShadow, call: dict[str, Any]
    ) -> list[Emission]:
        request = json.loads(call["payload"])
        token = {"clientToken": request["clientToken"]} if "clientToken" in request else {}
        documents: dict[str, Any] = {}
        if previous is not None and not previous.deleted:
            documents["previous"] = self._document(previous)
        documents["current"] = self._document(current)
        documents["timestamp"] = current.timestamp
        prefix = self._shadow_prefix(call)
        return [
            Emission(None, f"{prefix}/update/accepted", current.to_response_dict() | token),
            Emission(None, f"{prefix}/update/documents", documents | token),
        ]

    def _shadow_deleted(
        self, backend: IoTDataPlaneBackend, _: FakeShadow | None, current: FakeShadow, call: dict[str, Any]
    ) -> list[Emission]:
        payload = {"version": current.version, "timestamp": current.timestamp}
        return [Emission(None, f"{self._shadow_prefix(call)}/delete/accepted", payload)]


def _nothing(backend: Any, call: dict[str, Any]) -> None:
    return None


_installed: IotEvents | None = None


def install(engine: RulesEngine) -> IotEvents:
    """Start publishing registry events, shadow messages and JITR events through ``engine``."""
    global _installed
    if _installed is not None:
        raise RuntimeError("iot_events is already installed; uninstall() it first")
    events = IotEvents(engine)
    events.install()
    _installed = events
    return events
