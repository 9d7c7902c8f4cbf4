"""Device Shadow service: shadows by thing name, section deletion with null, and the documented size and depth.

moto 5.2.5 keeps shadows inside the registry's thing, so a shadow needs a registered thing and disappears with
it; AWS keys shadows by thing name alone: "a shadow ... can exist for a name that is not registered" and
deleting a thing does not delete its shadows
(https://docs.aws.amazon.com/iot/latest/developerguide/iot-device-shadows.html). moto also ignores
``{"state": {"desired": null}}``, which deletes the desired section
(https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html#device-shadow-empty-fields),
and accepts any size and depth.
"""

from __future__ import annotations

import json
from typing import Any

from moto.iotdata.exceptions import (
    ConflictException,
    InvalidRequestException,
    IoTDataPlaneClientError,
    ResourceNotFoundException,
)
from moto.iotdata.models import FakeShadow, IoTDataPlaneBackend

from iot_dr_local.moto_fixes.iot_registry import THING_NAME
from iot_dr_local.patching import Patches

# https://docs.aws.amazon.com/general/latest/gr/iot-core.html#device-shadow-limits and
# https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html: 8 KB of desired and
# reported state (metadata excluded, https://docs.aws.amazon.com/iot/latest/developerguide/diagnosing-shadows.html),
# at most 6 levels of nesting in a section.
MAX_STATE_BYTES = 8 * 1024
MAX_DEPTH = 6
SECTIONS = ("desired", "reported")
_STORE_ATTRIBUTE = "_local_shadows"

_patches = Patches()


class PayloadTooLargeException(IoTDataPlaneClientError):
    def __init__(self) -> None:
        self.code = 413
        super().__init__("RequestEntityTooLargeException", "The payload exceeds the maximum size allowed")


def _store(backend: IoTDataPlaneBackend) -> dict[tuple[str, str | None], FakeShadow]:
    """(thing name, shadow name or None for the classic shadow) -> shadow; a moto reset clears it."""
    shadows: dict[tuple[str, str | None], FakeShadow] | None = backend.__dict__.get(_STORE_ATTRIBUTE)
    if shadows is None:
        shadows = {}
        setattr(backend, _STORE_ATTRIBUTE, shadows)
    return shadows


def stored_shadow(backend: IoTDataPlaneBackend, thing_name: str, shadow_name: str | None) -> FakeShadow | None:
    """The shadow as last written (possibly a deleted marker), wherever the installed fixes keep it."""
    if _patches.applied:
        return _store(backend).get((thing_name, shadow_name))
    thing = backend.iot_backend.describe_thing(thing_name)
    shadow: FakeShadow | None = thing.thing_shadows.get(shadow_name)
    return shadow


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(member) for member in value.values()), default=0)
    if isinstance(value, list):
        return max((_depth(member) for member in value), default=0)
    return 0


def _merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` applied to ``current``: null removes a key, objects merge, anything else replaces."""
    merged = dict(current)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = _merge({}, value) if isinstance(value, dict) else value
    return merged


def _validated_request(thing_name: str, payload: str) -> dict[str, Any]:
    if not THING_NAME.fullmatch(thing_name or ""):
        raise InvalidRequestException(f"Invalid thing name: {thing_name}")
    try:
        request = json.loads(payload)
    except ValueError as err:
        raise InvalidRequestException("Invalid JSON") from err
    if not isinstance(request, dict) or "state" not in request:
        raise InvalidRequestException("Missing required node: state")
    state = request["state"]
    if state is None:
        return request
    if not isinstance(state, dict):
        raise InvalidRequestException("State node must be an object")
    for section, value in state.items():
        if section not in SECTIONS:
            raise InvalidRequestException("State contains an invalid node")
        if value is not None and not isinstance(value, dict):
            raise InvalidRequestException(f"{section.capitalize()} node must be an object")
        if _depth(value) > MAX_DEPTH:
            raise InvalidRequestException(f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")
    return request


def _update_thing_shadow(
    backend: IoTDataPlaneBackend, thing_name: str, payload: str, shadow_name: str | None
) -> FakeShadow:
    request = _validated_request(thing_name, payload)
    shadows = _store(backend)
    previous = shadows.get((thing_name, shadow_name))
    if "version" in request and (previous is None or previous.version != request["version"]):
        raise ConflictException("Version conflict")
    version = previous.version + 1 if previous is not None else 1
    live = previous is not None and not previous.deleted
    sections = {section: (getattr(previous, section) or {}) if live else {} for section in SECTIONS}
    state = request["state"]
    if state is None:
        sections = {section: {} for section in SECTIONS}
    else:
        for section, value in state.items():
            sections[section] = {} if value is None else _merge(sections[section], value)
    stored = {section: value for section, value in sections.items() if value}
    if len(json.dumps(stored, separators=(",", ":")).encode()) > MAX_STATE_BYTES:
        raise PayloadTooLargeException()
    shadow = FakeShadow(sections["desired"] or None, sections["reported"] or None, request, version)
    shadows[(thing_name, shadow_name)] = shadow
    return shadow


def _get_thing_shadow(backend: IoTDataPlaneBackend, thing_name: str, shadow_name: str | None) -> FakeShadow:
    shadow = _store(backend).get((thing_name, shadow_name))
    if shadow is None or shadow.deleted:
        raise ResourceNotFoundException()
    return shadow


def _delete_thing_shadow(backend: IoTDataPlaneBackend, thing_name: str, shadow_name: str | None) -> FakeShadow:
    """Deleting keeps the version counting: the next update continues from it."""
    shadows = _store(backend)
    shadow = shadows.get((thing_name, shadow_name))
    if shadow is None or shadow.deleted:
        raise ResourceNotFoundException()
    deleted = FakeShadow.create_from_previous_version(shadow, None)
    shadows[(thing_name, shadow_name)] = deleted
    return deleted


def _list_named_shadows_for_thing(backend: IoTDataPlaneBackend, thing_name: str) -> list[str]:
    return sorted(
        name
        for (thing, name), shadow in _store(backend).items()
        if thing == thing_name and name is not None and not shadow.deleted
    )


def install() -> None:
    if _patches.applied:
        return
    _patches.set(IoTDataPlaneBackend, "update_thing_shadow", _update_thing_shadow)
    _patches.set(IoTDataPlaneBackend, "get_thing_shadow", _get_thing_shadow)
    _patches.set(IoTDataPlaneBackend, "delete_thing_shadow", _delete_thing_shadow)
    _patches.set(IoTDataPlaneBackend, "list_named_shadows_for_thing", _list_named_shadows_for_thing)


def uninstall() -> None:
    _patches.restore()
