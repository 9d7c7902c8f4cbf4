"""How the trigger groups a stream batch into workflow input, and how parked items are named."""

from __future__ import annotations

import json

from iot_dr.core.event_types import APPLY_WAVE, FAMILY_OF, WORKER_STATE, EventType
from iot_dr.parking.dead_letters import workflow_dead_letter_id
from iot_dr.secondary.trigger import chunks, trigger_dead_letter_id
from iot_dr.secondary.workflow import execution_input


def item(event_type: EventType, size: int = 10) -> dict:
    return {"eventType": str(event_type), "event": {"pad": "x" * size}, "record": {}}


def test_every_event_type_has_a_wave_and_a_worker() -> None:
    assert set(APPLY_WAVE) == set(EventType) == set(FAMILY_OF)
    assert set(WORKER_STATE) == set(FAMILY_OF.values())


def test_execution_input_applies_dependencies_in_earlier_waves_and_keeps_stream_order_within_one() -> None:
    shadow_1, thing, shadow_2, thing_type = (
        item(EventType.SHADOW, 1),
        item(EventType.THING),
        item(EventType.SHADOW, 2),
        item(EventType.THING_TYPE),
    )
    waves = execution_input([shadow_1, thing, shadow_2, thing_type])["waves"]
    assert waves == [{"items": [thing_type]}, {"items": [thing]}, {"items": [shadow_1, shadow_2]}]


def test_chunks_stay_within_the_input_limit_and_keep_every_item_in_order() -> None:
    pending = [({"n": n}, item(EventType.THING, 300)) for n in range(10)]
    groups = list(chunks(pending, limit=1000))
    assert [p for group in groups for p in group] == pending
    assert len(groups) > 1
    for group in groups:
        assert sum(len(json.dumps(i)) + 2 for _, i in group) <= 1000 or len(group) == 1


def test_records_without_an_event_id_never_share_a_dead_letter() -> None:
    assert trigger_dead_letter_id({}) != trigger_dead_letter_id({})
    assert workflow_dead_letter_id({"event": {"record": {}}}) != workflow_dead_letter_id({"event": {"record": {}}})
    # With an eventID, a record parked twice keeps one dead letter.
    parked = {"event": {"record": {"eventID": "abc"}}, "executionArn": "arn:x"}
    assert workflow_dead_letter_id(parked) == workflow_dead_letter_id({**parked, "executionArn": "arn:y"})
