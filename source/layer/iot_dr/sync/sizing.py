"""How many devices a sync works on at once, sized from the rate limits rather than taken from ``MAX_WORKERS`` alone.

A worker has one call in flight at a time, so keeping the quotas busy takes (Little's law)

    workers = ceil(devices per second the quotas allow x calls per device x seconds per call)

capped by ``MAX_WORKERS`` (at least 1). The devices per second are those of the tightest operation: its rate limit
divided by its calls per device. More workers would only wait on the rate limiter; fewer would leave the quota
unused.

Calls per device were counted on the local cloud for a device with one certificate, one policy and a classic shadow
(``benchmarks/region_sync.py`` prints them as ``callsPerDevice``); the operations listed are those at AWS IoT's
tightest default quotas (10 per second) that every device calls once. ``CALL_SECONDS`` is an assumption: AWS
documents no latency for the IoT control plane; 0.1 s covers a call across regions (the secondary's calls leave
the primary's region) plus the service's own time. Raised quotas (``--rate``) raise the figure up to the cap;
shards given a share of the quota lower it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

CALL_SECONDS = 0.1


@dataclass(frozen=True)
class DeviceCost:
    """IoT calls per device in both regions, and the calls per device of the operations with the tightest quotas."""

    calls: float
    tightest: Mapping[str, float]


_PRIMARY_READS = {"DescribeCertificate": 1, "ListThingGroupsForThing": 1, "ListNamedShadowsForThing": 1}
# (sync kind, mode) → cost; repair reads the device in both regions (18 calls) before it writes.
COSTS: dict[tuple[str, str], DeviceCost] = {
    ("region-to-region", "smart"): DeviceCost(31, {**_PRIMARY_READS, "RegisterCertificateWithoutCA": 1}),
    ("region-to-region", "repair"): DeviceCost(49, {**_PRIMARY_READS, "RegisterCertificateWithoutCA": 1}),
    ("region-to-ddb", "smart"): DeviceCost(12, _PRIMARY_READS),
    ("region-to-ddb", "repair"): DeviceCost(30, _PRIMARY_READS),
}


@dataclass(frozen=True)
class Sizing:
    """``workers`` and how they were found: ``devicesPerSecond`` allowed by ``binding`` (an operation name)."""

    workers: int
    devices_per_second: float
    binding: str
    calls_per_device: float
    call_seconds: float

    def as_json(self) -> dict[str, object]:
        """The sizing as the sync summary prints it."""
        return {
            "workers": self.workers,
            "devicesPerSecond": round(self.devices_per_second, 3),
            "binding": self.binding,
            "callsPerDevice": self.calls_per_device,
            "callSeconds": self.call_seconds,
        }


def size_workers(
    kind: str, mode: str, rate: Callable[[str], float], cap: int, call_seconds: float = CALL_SECONDS
) -> Sizing:
    """Workers for a ``kind`` sync in ``mode`` when ``rate(operation)`` is the requests per second allowed;
    between 1 and ``cap``. Raises KeyError for an unknown kind or mode."""
    cost = COSTS[(kind, mode)]
    binding = min(cost.tightest, key=lambda operation: rate(operation) / cost.tightest[operation])
    devices_per_second = rate(binding) / cost.tightest[binding]
    wanted = math.ceil(devices_per_second * cost.calls * call_seconds)
    return Sizing(max(1, min(cap, wanted)), devices_per_second, binding, cost.calls, call_seconds)
