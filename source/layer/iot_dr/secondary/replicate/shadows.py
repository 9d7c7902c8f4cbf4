"""Classic and named shadows, replicated as exact JSON documents and ordered by the shadow's own version.

The topic rules put the message as published, base64-encoded (``encode(*, 'base64')``), into the item's
``document``: it never passes through DynamoDB's number type, so any value the Device Shadow service accepts
(integers of any length, doubles at their limits, booleans, unicode, nested arrays) arrives unchanged.

Order (documented in docs/architecture.md, "Shadow order"):

- Within one shadow's life the ``version`` orders its messages; ``receivedAt`` (the rule's receive time,
  in ms) only breaks ties, and a deletion ranks after an update of the same version.
- A shadow re-created within 48 hours of its deletion continues the deleted one's version; one re-created
  later starts again from 0 (https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-data-flow.html).
  A message without ``previous`` creates the shadow: it supersedes whatever was received before it, whatever
  its version, and nothing received before a newer creation can supersede that creation's life.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from iot_dr.core.errors import DependencyNotReady, MalformedEvent
from iot_dr.secondary.ledger import LedgerEntry, Outcome, converge, order_key
from iot_dr.secondary.replicate.context import (
    Secondary,
    deleted_since,
    ignore_not_found,
    is_not_found,
    require,
    require_int,
    thing_key,
)

UPDATE_RANK, DELETE_RANK = 0, 1
SECTIONS = ("desired", "reported")
DOCUMENT_KINDS = ("update/documents", "delete/accepted")


def parse_shadow_topic(topic: str) -> tuple[str, str | None, str]:
    """``$aws/things/<thing>/shadow[/name/<shadow>]/<update/documents|delete/accepted>`` → (thing, shadow, kind).

    Raises MalformedEvent for any other topic.
    """
    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != "$aws" or parts[1] != "things" or parts[3] != "shadow":
        raise MalformedEvent(f"not a shadow topic: {topic!r}")
    thing, rest = parts[2], parts[4:]
    shadow = None
    if rest[0] == "name":
        if len(rest) != 4:
            raise MalformedEvent(f"not a named shadow topic: {topic!r}")
        shadow, rest = rest[1], rest[2:]
    kind = "/".join(rest)
    if kind not in DOCUMENT_KINDS:
        raise MalformedEvent(f"shadow topic {topic!r} is neither update/documents nor delete/accepted")
    return thing, shadow, kind


def shadow_key(thing: str, shadow: str | None) -> str:
    """The ledger key of a shadow, ``shadow#<thing>#<name>`` (empty name for the classic shadow)."""
    return f"shadow#{thing}#{shadow or ''}"


def decode_message(event: dict[str, Any]) -> dict[str, Any]:
    """The shadow message as published, from the item's base64 ``document``; MalformedEvent if it is not one."""
    try:
        message = json.loads(base64.b64decode(str(require(event, "document")), validate=True))
    except (binascii.Error, ValueError) as err:
        raise MalformedEvent(f"shadow item's document is not base64 of a JSON message: {err}") from err
    if not isinstance(message, dict):
        raise MalformedEvent("shadow message is not a JSON object")
    return message


def _version(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(f"{where} version is not a non-negative integer: {value!r}")
    return value


def shadow_state(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The ledger key and state one shadow item stands for: ``{exists, state?, version, receivedAt, creates, ...}``.

    Raises MalformedEvent for a message that is not a well-formed ``update/documents`` or ``delete/accepted``.
    """
    thing, shadow, kind = parse_shadow_topic(str(require(event, "topic")))
    received = require_int(event, "receivedAt")
    message = decode_message(event)
    state: dict[str, Any] = {"thingName": thing, "shadowName": shadow, "receivedAt": received}
    if kind == "update/documents":
        current = message.get("current")
        if not isinstance(current, dict) or not isinstance(current.get("state"), dict):
            raise MalformedEvent("update/documents message without a current.state object")
        version = _version(current.get("version"), "current")
        sections = {s: v for s, v in current["state"].items() if s in SECTIONS}
        if any(not isinstance(v, dict) for v in sections.values() if v is not None):
            raise MalformedEvent("a shadow's desired and reported sections must be objects")
        state.update(exists=True, state=sections, version=version, creates="previous" not in message)
        rank = UPDATE_RANK
    else:
        version = _version(message.get("version"), "delete/accepted")
        state.update(exists=False, version=version, creates=False)
        rank = DELETE_RANK
    return shadow_key(thing, shadow), {**state, "rank": rank}


def supersedes(candidate: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """Whether the ``candidate`` state replaces the ``recorded`` one (see the module docstring)."""
    if candidate["creates"] and candidate["receivedAt"] > recorded["receivedAt"]:
        return True
    if recorded.get("creates") and recorded["receivedAt"] > candidate["receivedAt"]:
        return False
    mine = (candidate["version"], candidate["rank"], candidate["receivedAt"])
    theirs = (recorded["version"], recorded.get("rank", UPDATE_RANK), recorded["receivedAt"])
    return mine > theirs


def apply_shadow_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    """Apply one shadow item (see ``shadow_state``); returns whether it was applied or superseded."""
    resource_key, state = shadow_state(event)
    key = order_key((state["version"], state["rank"], state["receivedAt"]))

    def newer(entry: LedgerEntry) -> bool:
        return supersedes(state, entry.state)

    return converge(ctx.ledger, resource_key, key, state, lambda s: write_shadow(ctx, s), newer=newer)


def same_json(left: Any, right: Any) -> bool:
    """JSON equality with types: ``True`` differs from ``1``, ``0`` from ``False``, ``1`` from ``1.0``."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same_json(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def difference(current: Any, target: dict[str, Any]) -> dict[str, Any]:
    """The shadow update that turns ``current`` into exactly ``target``: new values, and null for removed keys.

    Objects merge key by key (the shadow service's update semantics); every other value, arrays included,
    is replaced whole when it differs in value or JSON type.
    """
    current = current if isinstance(current, dict) else {}
    patch: dict[str, Any] = {}
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            nested = difference(current[key], value)
            if nested:
                patch[key] = nested
        elif key not in current or not same_json(current[key], value):
            patch[key] = value
    for key in current:
        if key not in target:
            patch[key] = None
    return patch


def write_shadow(ctx: Secondary, state: dict[str, Any]) -> None:
    """Make the secondary's shadow equal the ledger ``state``: delete it, or update it by the difference."""
    thing, shadow = state["thingName"], state["shadowName"]
    named = {"shadowName": shadow} if shadow else {}
    if not state["exists"]:
        ignore_not_found(ctx.iot_data.delete_thing_shadow, thingName=thing, **named)
        return
    try:
        document = json.loads(ctx.iot_data.get_thing_shadow(thingName=thing, **named)["payload"].read())
    except Exception as err:
        if not is_not_found(err):
            raise
        document = {}
    current_state = document.get("state", {})
    target = {section: state["state"][section] for section in SECTIONS if state["state"].get(section) is not None}
    patch = difference({s: current_state.get(s) for s in SECTIONS if s in current_state}, target)
    for section in SECTIONS:
        if section in patch and patch[section] is None and isinstance(current_state.get(section), dict):
            # Remove a section key by key: every shadow service honours that, not all honour "section": null.
            patch[section] = dict.fromkeys(current_state[section])
    if not patch:
        if document:
            return
        # The primary's shadow exists with an empty state: create it empty here too.
        patch = {"reported": None}
    try:
        ctx.iot_data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": patch}), **named)
    except Exception as err:
        if not is_not_found(err):
            raise
        if deleted_since(ctx.ledger, thing_key(thing), state["receivedAt"]):
            return
        raise DependencyNotReady(f"thing {thing} for shadow {shadow or 'classic'} is not replicated yet") from err
