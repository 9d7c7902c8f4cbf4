"""Compare a fleet across two regions, device by device, in parallel under the rate limiter.

``compare_fleet`` takes the names to compare (normally the union of both regions' ``thing_names`` for one query)
and returns one ``DeviceDrift`` per name; ``wait`` re-compares devices out of sync until they converge or the
deadline passes, for callers that run right after a change (replication takes seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iot_dr.core import aws
from iot_dr.fleet.device import Difference, compare_devices, read_device
from iot_dr.fleet.rate_limit import LimitedClient, RateLimiter

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient
    from types_boto3_iot_data import IoTDataPlaneClient

MAX_WORKERS = 50


@dataclass(frozen=True)
class Region:
    """A region's name and its control-plane and data-plane clients (possibly ``LimitedClient``s)."""

    name: str
    iot: IoTClient
    iot_data: IoTDataPlaneClient

    @classmethod
    def limited(cls, name: str, limiter: RateLimiter | None = None) -> Region:
        """Clients of region ``name`` whose calls all go through ``limiter`` (one per region by default: AWS
        quotas are per account and region)."""
        limiter = limiter or RateLimiter()
        return cls(
            name,
            LimitedClient(aws.client("iot", name), limiter),
            LimitedClient(aws.client("iot-data", name), limiter),
        )


@dataclass
class DeviceDrift:
    """The comparison of one device; ``error`` is set when it could not be read (then ``differences`` is empty)."""

    name: str
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None

    @property
    def in_sync(self) -> bool:
        """True when the device was read on both sides and nothing differs."""
        return not self.differences and self.error is None

    def as_json(self) -> dict[str, Any]:
        """``{"thingName", "inSync", "differences": [Difference.as_json()], "error"}``."""
        return {
            "thingName": self.name,
            "inSync": self.in_sync,
            "differences": [d.as_json() for d in self.differences],
            "error": self.error,
        }


def compare_device(primary: Region, secondary: Region, name: str, shadows: bool = True) -> DeviceDrift:
    """Read ``name`` in both regions and compare them (shadows too unless ``shadows`` is False). Never raises: an
    error reading either side is reported in ``DeviceDrift.error`` as ``<ErrorType>: <message>``."""
    try:
        left = read_device(primary.iot, primary.iot_data, name, shadows)
        right = read_device(secondary.iot, secondary.iot_data, name, shadows)
    except Exception as err:  # one device's failure is reported with it; the others are still compared
        return DeviceDrift(name, error=f"{type(err).__name__}: {err}")
    return DeviceDrift(name, compare_devices(left, right, primary.name, secondary.name))


def compare_fleet(
    primary: Region,
    secondary: Region,
    names: Iterable[str],
    max_workers: int = 10,
    shadows: bool = True,
    wait: float = 0.0,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeviceDrift]:
    """One ``DeviceDrift`` per name, sorted by name; devices out of sync are compared again every ``poll``
    seconds for up to ``wait`` seconds."""
    if not 1 <= max_workers <= MAX_WORKERS:
        raise ValueError(f"max_workers must be between 1 and {MAX_WORKERS}, got {max_workers}")
    deadline = time.monotonic() + wait
    with ThreadPoolExecutor(max_workers=max_workers) as pool:

        def run(batch: Iterable[str]) -> dict[str, DeviceDrift]:
            return {d.name: d for d in pool.map(lambda n: compare_device(primary, secondary, n, shadows), batch)}

        results = run(sorted(set(names)))
        while time.monotonic() < deadline:
            pending = [name for name, drift in results.items() if not drift.in_sync]
            if not pending:
                break
            sleep(poll)
            results.update(run(pending))
    return [results[name] for name in sorted(results)]
