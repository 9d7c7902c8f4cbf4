"""Classic and named shadows, replicated as full documents (not request deltas) with their deletions."""

from __future__ import annotations

import json
from typing import Any

from iot_dr.errors import DependencyNotReady, MalformedEvent
from iot_dr.ledger import Outcome, converge, order_key
from iot_dr.replicate.context import (
    Secondary,
    deleted_since,
    describe_or_none,
    ignore_not_found,
    is_not_found,
    named_shadows,
    require,
    thing_key,
)

UPDATE_RANK, DELETE_RANK = 0, 1
SECTIONS = ("desired", "reported")


def parse_shadow_topic(topic: str) -> tuple[str, str | None, str]:
    """``$aws/things/<thing>/shadow[/name/<shadow>]/<update/documents|delete/accepted>`` → (thing, shadow, kind)."""
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
    if kind not in ("update/documents", "delete/accepted"):
        raise MalformedEvent(f"shadow topic {topic!r} is neither update/documents nor delete/accepted")
    return thing, shadow, kind


def shadow_key(thing: str, shadow: str | None) -> str:
    return f"shadow#{thing}#{shadow or ''}"


def shadows_deleted_key(thing: str) -> str:
    return f"shadowsDeleted#{thing}"


def received_at(event: dict[str, Any]) -> int:
    """When the rules engine received the message, in ms; the message's own timestamp is only in seconds."""
    value = event.get("receivedAt")
    return int(value) if value is not None else int(require(event, "timestamp")) * 1000


def apply_shadow_event(ctx: Secondary, event: dict[str, Any]) -> Outcome:
    thing, shadow, kind = parse_shadow_topic(require(event, "topic"))
    received = received_at(event)
    watermark = ctx.ledger.read(shadows_deleted_key(thing))
    if watermark is not None and watermark.state["deletedAt"] >= received:
        # The thing was deleted (and its shadows with it) after this message: it belongs to the past.
        return Outcome.STALE
    if kind == "update/documents":
        current = require(event, "current")
        if not isinstance(current, dict) or "version" not in current:
            raise MalformedEvent("update/documents message without current.version")
        state = {"exists": True, "state": current.get("state") or {}}
        key = order_key((received, int(current["version"]), UPDATE_RANK))
    else:
        state = {"exists": False}
        key = order_key((received, int(require(event, "version")), DELETE_RANK))
    state.update(thingName=thing, shadowName=shadow, timestampMs=received)
    return converge(ctx.ledger, shadow_key(thing, shadow), key, state, lambda s: write_shadow(ctx, s))


def delete_shadows_with_thing(ctx: Secondary, thing: str, deleted_at: int) -> None:
    """A thing's deletion takes its shadows along: remember when, and delete those older than that.

    The watermark makes late messages from before the deletion stale, whatever shadow they name; shadows
    updated after a re-creation (newer than the watermark) are kept.
    """
    ctx.ledger.offer(shadows_deleted_key(thing), order_key((deleted_at,)), {"deletedAt": deleted_at})
    present = [None, *named_shadows(ctx.iot_data, thing)] if _thing_exists(ctx, thing) else [None]
    tombstone = order_key((deleted_at, 0, DELETE_RANK))
    for shadow in present:
        state = {"exists": False, "thingName": thing, "shadowName": shadow, "timestampMs": deleted_at}
        converge(ctx.ledger, shadow_key(thing, shadow), tombstone, state, lambda s: write_shadow(ctx, s))


def _thing_exists(ctx: Secondary, thing: str) -> bool:
    return describe_or_none(ctx.iot.describe_thing, thingName=thing) is not None


def difference(current: Any, target: Any) -> dict[str, Any]:
    """The shadow update that turns ``current`` into exactly ``target``: new values, and null for removed keys."""
    current = current if isinstance(current, dict) else {}
    patch: dict[str, Any] = {}
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            nested = difference(current[key], value)
            if nested:
                patch[key] = nested
        elif current.get(key) != value or key not in current:
            patch[key] = value
    for key in current:
        if key not in target:
            patch[key] = None
    return patch


def write_shadow(ctx: Secondary, state: dict[str, Any]) -> None:
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
    target = {section: state["state"].get(section) for section in SECTIONS if section in state["state"]}
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
        if deleted_since(ctx.ledger, thing_key(thing), state["timestampMs"]):
            return
        raise DependencyNotReady(f"thing {thing} for shadow {shadow or 'classic'} is not replicated yet") from err
