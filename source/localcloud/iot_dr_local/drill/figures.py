"""Figures of a drill, computed from the events the drill observed (never from settings).

Times are Unix epoch seconds (float) as the events carry them; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Stats:
    """p50/p95/max of a list of durations in seconds; ``count`` values, all None when there are none."""

    count: int
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None)
        return cls(len(ordered), _percentile(ordered, 50), _percentile(ordered, 95), ordered[-1])


def _percentile(ordered: Sequence[float], percent: int) -> float:
    """Nearest-rank percentile: the smallest value with at least ``percent`` % of the values at or below it."""
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass(frozen=True)
class DeviceSwitch:
    """One device's cut-off around a region switch: it lost or left its connection at ``disconnected_at`` and could
    publish again (subscribed) at ``ready_at`` on ``to_role``'s broker. ``rto`` is ``ready_at - disconnected_at``."""

    device: str
    phase: str
    disconnected_at: float
    ready_at: float
    to_role: str
    rto: float


def _left_region(line: dict[str, Any]) -> str | None:
    """The role a device left, when ``line`` says it was cut off: its connection dropped (DISCONNECTED, as at an
    outage) or it dropped it itself to follow the CNAME (``REGION SWITCH detected``, as at a planned failback)."""
    message = str(line.get("message", ""))
    if message == "DISCONNECTED":
        return str(line.get("role"))
    if message.startswith("REGION SWITCH detected"):
        return str(line.get("from", {}).get("role"))
    return None


def device_switches(device: str, phase: str, lines: Sequence[dict[str, Any]], after: float) -> DeviceSwitch | None:
    """The device's first cut-off at or after ``after`` (see ``_left_region``) and its first SUBSCRIBED after a
    CONNECTED to another region than the one it left; None when the device never got back in this phase."""
    cut_off: dict[str, Any] | None = None
    left: str | None = None
    role: str | None = None
    for line in lines:
        if cut_off is None:
            left = _left_region(line)
            if left is not None and line.get("at", 0) >= after:
                cut_off = line
            continue
        message = line.get("message")
        if message == "CONNECTED" and line.get("role") != left:
            role = line.get("role")
        elif message == "SUBSCRIBED" and role is not None:
            return DeviceSwitch(device, phase, cut_off["at"], line["at"], role, line["at"] - cut_off["at"])
    return None


@dataclass
class MessageCounts:
    """QoS 1 messages over the whole drill, summed over the simulated devices' own summaries."""

    published: int = 0
    acknowledged: int = 0
    received: int = 0
    lost: int = 0
    lost_ids: dict[str, list[int]] = field(default_factory=dict)

    def add(self, device: str, summary: dict[str, Any]) -> None:
        """``summary``: the ``summary`` object iot-dr-pubsub.py logs last (``acknowledged_ids``, ``received_ids``)."""
        self.published += summary["published"]
        self.acknowledged += summary["acknowledged"]
        self.received += summary["received"]
        lost = sorted(set(summary["acknowledged_ids"]) - set(summary["received_ids"]))
        if lost:
            self.lost_ids[device] = lost
        self.lost += len(lost)


def as_json(value: Any) -> Any:
    """Dataclasses (nested) as plain JSON values."""
    return asdict(value) if hasattr(value, "__dataclass_fields__") else value
