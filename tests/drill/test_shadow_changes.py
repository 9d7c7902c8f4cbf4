"""The RPO arithmetic: which of the drill's shadow changes a region lacks, given the ``drill_seq`` it holds."""

from __future__ import annotations

import pytest

from iot_dr_local.drill.observations import ShadowChange
from iot_dr_local.drill.shadow_changes import backlog, fate, missing

CHANGES = [
    ShadowChange("a", "us-east-1", 1, 100.0),
    ShadowChange("b", "us-east-1", 2, 101.0),
    ShadowChange("a", "us-east-1", 3, 102.0),
    ShadowChange("c", "us-east-1", 4, 103.0),
]


def test_a_change_is_lacking_while_the_region_holds_an_older_seq_of_its_thing() -> None:
    held = {"a": 1, "b": 2}  # "c" has no shadow there yet
    reads: list[str] = []

    def seq_of(thing: str) -> int | None:
        reads.append(thing)
        return held.get(thing)

    lacking = missing(CHANGES, seq_of)

    assert [change.seq for change in lacking] == [3, 4]
    assert sorted(reads) == ["a", "b", "c"]  # one read per thing
    figures = backlog(CHANGES, lacking, at=110.0)
    assert figures == {
        "changes_made": 4,
        "things_checked": 3,
        "unreplicated": 2,
        "oldest_unreplicated_age_seconds": pytest.approx(8.0),
    }
    assert backlog(CHANGES, [], at=110.0)["oldest_unreplicated_age_seconds"] is None


def test_changes_made_while_failed_over_are_drift_unless_the_primary_holds_them() -> None:
    made = [ShadowChange("a", "us-west-2", 7, 200.0), ShadowChange("b", "us-west-2", 8, 201.0)]
    in_secondary = {"a": 7, "b": 8}.get

    kept = fate(made, primary={"a": 3}.get, secondary=in_secondary)
    assert (kept["copied_to_primary"], kept["kept_in_secondary"]) == (0, 2)
    assert kept["fate"].startswith("kept in the secondary only")

    copied = fate(made, primary={"a": 7}.get, secondary=in_secondary)
    assert (copied["copied_to_primary"], copied["fate"]) == (1, "copied to the primary")


def test_a_change_made_while_failed_over_is_overwritten_by_an_older_primary_change_that_replicated_later() -> None:
    made = [ShadowChange("a", "us-west-2", 7, 200.0), ShadowChange("b", "us-west-2", 8, 201.0)]
    # "a" now holds primary change 5, made before the outage and applied in the secondary after change 7.
    figures = fate(made, primary={"a": 5, "b": 2}.get, secondary={"a": 5, "b": 8}.get)
    outcome = (figures["copied_to_primary"], figures["kept_in_secondary"], figures["overwritten_by_replication"])
    assert outcome == (0, 1, 1)
    assert figures["fate"].endswith("1 overwritten by primary changes from before the outage that replicated later")
