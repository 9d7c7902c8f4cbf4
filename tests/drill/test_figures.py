"""The drill's figures from device events: the cut-off of a device around a switch and nearest-rank percentiles."""

from __future__ import annotations

from iot_dr_local.drill.figures import MessageCounts, Stats, device_switches


def _connected(at: float, role: str) -> dict[str, object]:
    return {"message": "CONNECTED", "role": role, "at": at}


def _subscribed(at: float) -> dict[str, object]:
    return {"message": "SUBSCRIBED", "at": at}


def test_an_outage_cut_off_runs_from_the_drop_to_the_subscription_in_the_other_region() -> None:
    lines = [
        _connected(1.0, "primary"),
        _subscribed(1.1),
        {"message": "DISCONNECTED", "role": "primary", "at": 10.0},
        # Reconnecting to the region it lost is not recovery.
        _connected(10.5, "primary"),
        _subscribed(10.6),
        _connected(12.0, "secondary"),
        _subscribed(12.25),
    ]
    switch = device_switches("d1", "failover", lines, after=9.0)
    assert switch is not None
    assert (switch.disconnected_at, switch.ready_at, switch.to_role, switch.rto) == (10.0, 12.25, "secondary", 2.25)


def test_a_planned_failback_cut_off_starts_when_the_device_leaves_to_follow_the_cname() -> None:
    lines = [
        _connected(12.0, "secondary"),
        _subscribed(12.1),
        {"message": "REGION SWITCH detected: b -> a", "from": {"role": "secondary"}, "at": 20.0},
        _connected(20.2, "primary"),
        _subscribed(20.5),
    ]
    switch = device_switches("d1", "failback", lines, after=19.0)
    assert switch is not None and switch.rto == 0.5 and switch.to_role == "primary"


def test_events_before_the_trigger_and_a_device_that_never_returns_give_no_switch() -> None:
    lines = [{"message": "DISCONNECTED", "role": "primary", "at": 5.0}, _connected(6.0, "secondary"), _subscribed(6.1)]
    assert device_switches("d1", "failover", lines, after=7.0) is None
    assert device_switches("d1", "failover", lines[:2], after=1.0) is None


def test_nearest_rank_percentiles() -> None:
    assert Stats.of([]) == Stats(0, None, None, None)
    stats = Stats.of([float(n) for n in range(20, 0, -1)])
    assert (stats.count, stats.p50, stats.p95, stats.max) == (20, 10.0, 19.0, 20.0)


def test_lost_messages_are_acknowledged_ones_never_received() -> None:
    counts = MessageCounts()
    counts.add(
        "d1", {"published": 4, "acknowledged": 3, "received": 2, "acknowledged_ids": [1, 2, 3], "received_ids": [1, 3]}
    )
    assert (counts.published, counts.acknowledged, counts.lost, counts.lost_ids) == (4, 3, 1, {"d1": [2]})
