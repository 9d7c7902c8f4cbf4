"""The shadow changes a drill makes to measure the RPO: each sets ``desired.drill_seq`` to a number that only grows,
so reading a shadow in a region tells which of the drill's changes reached it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from iot_dr_local.drill.observations import ShadowChange

SeqOf = Callable[[str], int | None]


def write_change(iot_data: Any, thing: str, region: str, seq: int) -> ShadowChange:
    """Set the classic shadow's ``desired.drill_seq`` to ``seq`` in ``region`` (``iot_data`` is that region's)."""
    iot_data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"drill_seq": seq}}}))
    return ShadowChange(thing, region, seq, time.time())


def read_seq(iot_data: Any, thing: str) -> int | None:
    """The ``desired.drill_seq`` of the thing's classic shadow; None without shadow or value."""
    try:
        document = json.loads(iot_data.get_thing_shadow(thingName=thing)["payload"].read())
    except iot_data.exceptions.ResourceNotFoundException:
        return None
    value = document.get("state", {}).get("desired", {}).get("drill_seq")
    return value if isinstance(value, int) else None


def missing(changes: list[ShadowChange], seq_of: SeqOf) -> list[ShadowChange]:
    """The ``changes`` a region lacks: its shadow of the thing holds an older ``drill_seq`` (one read per thing)."""
    applied = {thing: seq_of(thing) or 0 for thing in {change.thing for change in changes}}
    return [change for change in changes if change.seq > applied[change.thing]]


def backlog(changes: list[ShadowChange], lacking: list[ShadowChange], at: float) -> dict[str, Any]:
    """The RPO figures at ``at``: ``changes_made``, ``things_checked``, ``unreplicated`` and
    ``oldest_unreplicated_age_seconds`` (``at`` minus the time of the oldest lacking change, None when none)."""
    oldest = min((change.at for change in lacking), default=None)
    return {
        "changes_made": len(changes),
        "things_checked": len({change.thing for change in changes}),
        "unreplicated": len(lacking),
        "oldest_unreplicated_age_seconds": None if oldest is None else at - oldest,
    }


def fate(made: Iterable[ShadowChange], primary: SeqOf, secondary: SeqOf) -> dict[str, Any]:
    """Where the changes made in the secondary while failed over are after failback: ``copied_to_primary``,
    ``kept_in_secondary`` (drift, as one-way replication leaves them) or ``overwritten_by_replication`` (a primary
    change made before the outage reached the secondary after them: the primary stays the source of truth), and
    ``fate``."""
    made = list(made)
    in_primary = sum(1 for change in made if primary(change.thing) == change.seq)
    now_in_secondary = [secondary(change.thing) for change in made]
    pairs = list(zip(made, now_in_secondary, strict=True))
    kept = sum(1 for change, seq in pairs if seq == change.seq)
    # The drill's primary changes stop before the outage, so an older number in the secondary came from the primary.
    overwritten = sum(1 for change, seq in pairs if seq is not None and seq < change.seq)
    fate_text = (
        "copied to the primary"
        if in_primary
        else "kept in the secondary only, reported as drift: replication is one-way (primary -> secondary)"
    )
    if overwritten:
        fate_text += f"; {overwritten} overwritten by primary changes from before the outage that replicated later"
    return {
        "copied_to_primary": in_primary,
        "kept_in_secondary": kept,
        "overwritten_by_replication": overwritten,
        "fate": fate_text,
    }
