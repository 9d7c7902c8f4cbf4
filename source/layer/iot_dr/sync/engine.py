"""Run a fleet through a sync: enumerate, shard, skip what a checkpoint or the secondary already has, copy the rest
in parallel under per-operation rate limits, and report.

``run`` returns a ``Summary``: devices seen, created, repaired, skipped, failed (with the reason of each), and the
calls and throttles by region and operation. Calls stay under AWS IoT's quotas through one ``RateLimiter`` per
region (quotas are per account and region); throttling that still happens is retried by botocore's standard
retries and counted here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from iot_dr.core import aws
from iot_dr.fleet.device import compare_devices, read_device
from iot_dr.fleet.drift import Region
from iot_dr.fleet.enumeration import indexing_enabled, name_pattern, thing_names
from iot_dr.fleet.rate_limit import DEFAULT_QUOTAS, LimitedClient, RateLimiter
from iot_dr.secondary.replicate.context import describe_or_none
from iot_dr.sync.checkpoint import Checkpoint, CheckpointLost, NoCheckpoint
from iot_dr.sync.settings import SettingsError, SyncSettings
from iot_dr.sync.shard import owns
from iot_dr.sync.sizing import Sizing

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient

LOG = logging.getLogger(__name__)

# Share of each quota a sync uses. A sync runs when the user wants the fleet copied and the replication is mostly
# idle, so it runs close to the quota; the margin absorbs the drift between our bucket and AWS's.
SYNC_SHARE = 0.98
# Error codes AWS IoT returns when a call is over its quota.
THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"})
THROTTLE_HANDLER_ID = "iot-dr-sync-throttles"
CALLS_HANDLER_ID = "iot-dr-sync-calls"


class CallCounter:
    """Counts the calls a region's clients send and the throttling answers they get, by operation.

    Both are botocore event handlers registered first (``before-call`` fires once per attempt; ``needs-retry`` is
    emitted until a handler answers, and the retry handler answers): they return None, so nothing else changes.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count_call(self, model: Any = None, **_: Any) -> None:
        """botocore ``before-call`` event handler: count one call of the operation."""
        with self._lock:
            self.calls[model.name] += 1

    def count_throttle(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        """botocore ``needs-retry`` event handler: count a throttled attempt (error code in ``THROTTLE_CODES``)."""
        if response is not None and response[1].get("Error", {}).get("Code") in THROTTLE_CODES:
            with self._lock:
                self.throttles[operation.name] += 1

    def attach(self, client: Any) -> None:
        """Register the counters on ``client``'s event system (first, with fixed ids so a second attach
        replaces them)."""
        client.meta.events.register_first("before-call", self.count_call, unique_id=CALLS_HANDLER_ID)
        client.meta.events.register_first("needs-retry", self.count_throttle, unique_id=THROTTLE_HANDLER_ID)

    @staticmethod
    def detach(client: Any) -> None:
        """Remove the counters from ``client`` (cached clients outlive a run)."""
        client.meta.events.unregister("before-call", unique_id=CALLS_HANDLER_ID)
        client.meta.events.unregister("needs-retry", unique_id=THROTTLE_HANDLER_ID)


@dataclass
class Summary:
    """The outcome of a sync run: device counts, failures (thing to reason), API calls and throttles per region and
    operation, and the run time in seconds."""

    seen: int = 0
    created: int = 0
    repaired: int = 0
    skipped: int = 0
    resumed: int = 0
    checkpoint: str | None = None
    failed: dict[str, str] = field(default_factory=dict)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    throttles: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 0
    sizing: Sizing | None = None

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON: the counts, ``failed`` (a count) and ``failures``, ``calls`` and ``throttles`` per
        region, ``seconds`` and the rate in devices per second."""
        done = self.created + self.repaired + self.skipped
        return {
            "workers": self.workers,
            "sizing": self.sizing.as_json() if self.sizing else None,
            "seen": self.seen,
            "created": self.created,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "checkpoint": self.checkpoint,
            "failed": len(self.failed),
            "failures": dict(sorted(self.failed.items())),
            "calls": self.calls,
            "throttles": self.throttles,
            "seconds": round(self.seconds, 3),
            "devicesPerSecond": round(done / self.seconds, 3) if self.seconds else 0.0,
        }


class Target(Protocol):
    """Where a sync puts a device: ``apply(name, existing)`` copies it (existing: the thing is already there)."""

    def apply(self, name: str, existing: bool) -> None:
        """Copy or feed device ``name``; ``existing`` says whether it is already in the secondary."""


def rate_limiter(settings: SyncSettings) -> RateLimiter:
    """A region's limiter: AWS's default quotas with the settings' overrides, at ``SYNC_SHARE``."""
    return RateLimiter({**DEFAULT_QUOTAS, **settings.rates}, SYNC_SHARE)


@dataclass
class Endpoints:
    """Both regions with rate-limited, counted clients."""

    primary: Region
    secondary: Region
    counters: dict[str, CallCounter]

    @classmethod
    def open(cls, settings: SyncSettings) -> Endpoints:
        """Rate-limited clients of both regions, with call counters attached."""
        counters: dict[str, CallCounter] = {}
        regions = []
        for name in (settings.primary_region, settings.secondary_region):
            limiter = rate_limiter(settings)
            counter = counters[name] = CallCounter()
            clients: list[Any] = [aws.client(service, name) for service in ("iot", "iot-data")]
            for client in clients:
                counter.attach(client)
            regions.append(Region(name, LimitedClient(clients[0], limiter), LimitedClient(clients[1], limiter)))
        return cls(regions[0], regions[1], counters)

    def close(self, summary: Summary) -> None:
        """Detach the counters and put their figures in ``summary``."""
        for name, counter in self.counters.items():
            for service in ("iot", "iot-data"):
                CallCounter.detach(aws.client(service, name))
            summary.calls[name] = dict(sorted(counter.calls.items()))
            summary.throttles[name] = dict(sorted(counter.throttles.items()))


def device_names(iot: IoTClient, query_string: str) -> Iterator[str]:
    """Things matching ``query_string`` from the fleet index; with indexing off, a ``thingName:<pattern>`` query is
    matched on ListThings and any other query is ignored (every thing is listed), with a warning, as the guide says."""
    query = query_string.strip()
    # "thingName: *" (the guide's default) and "thingName:*" are the same query.
    if query.startswith("thingName:"):
        query = "thingName:" + query.removeprefix("thingName:").strip()
    if not indexing_enabled(iot) and name_pattern(query) is None:
        LOG.warning("fleet indexing is off: the query string is ignored, every thing is synced", extra={"query": query})
        query = "thingName:*"
    yield from thing_names(iot, query)


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def sync_device(
    endpoints: Endpoints, target: Target, name: str, mode: str, interrupted: bool = False, shadows: bool = True
) -> str:
    """Sync one device; returns ``created``, ``repaired`` or ``skipped``. ``interrupted``: an earlier run stopped
    while copying it, so it is copied again in full whatever the mode."""
    primary, secondary = endpoints.primary, endpoints.secondary
    if interrupted:
        target.apply(name, existing=True)
        return "created"
    if mode == "smart":
        if describe_or_none(secondary.iot.describe_thing, thingName=name) is not None:
            return "skipped"
        target.apply(name, existing=False)
        return "created"
    left = read_device(primary.iot, primary.iot_data, name, shadows)
    right = read_device(secondary.iot, secondary.iot_data, name, shadows)
    if right is None:
        target.apply(name, existing=False)
        return "created"
    if left is None or not compare_devices(left, right, primary.name, secondary.name):
        return "skipped"
    target.apply(name, existing=True)
    return "repaired"


def run(
    settings: SyncSettings,
    endpoints: Endpoints,
    target: Target,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    names: Iterator[str] | None = None,
    sizing: Sizing | None = None,
) -> Summary:
    """Sync every device of ``settings.shard`` that the checkpoint has not finished. ``progress(n)`` is called as
    devices finish. ``names``: the fleet, if not enumerated from the primary with the query. ``sizing``: how many
    devices at once (``iot_dr.sync.sizing``); ``settings.max_workers`` if None. Raises ``SettingsError`` when the
    query matches no thing."""
    checkpoint = checkpoint or NoCheckpoint()
    workers = sizing.workers if sizing else settings.max_workers
    summary = Summary(workers=workers, sizing=sizing)
    started = time.monotonic()
    finished, interrupted = checkpoint.load()
    matched = 0
    lock = threading.Lock()
    lost = threading.Event()

    def one(name: str) -> None:
        try:
            checkpoint.start(name)
            outcome = sync_device(endpoints, target, name, settings.mode, name in interrupted)
            checkpoint.mark(name)
        except CheckpointLost as err:  # another run took the checkpoint over: this one stops
            LOG.error("checkpoint lost: stopping", extra={"thingName": name, "reason": _one_line(err)})
            lost.set()
            with lock:
                summary.failed[name] = _one_line(err)
        except Exception as err:  # one device's failure is reported with it; the others go on
            LOG.warning("device failed", extra={"thingName": name, "reason": _one_line(err)})
            with lock:
                summary.failed[name] = _one_line(err)
        else:
            with lock:
                setattr(summary, outcome, getattr(summary, outcome) + 1)
        if progress:
            progress(1)

    fleet = names if names is not None else device_names(endpoints.primary.iot, settings.query_string)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: set[Future[None]] = set()
            for name in fleet:
                if lost.is_set():
                    break
                matched += 1
                if not owns(settings.shard, name):
                    continue
                summary.seen += 1
                if name in finished:
                    summary.resumed += 1
                    if progress:
                        progress(1)
                    continue
                # A bounded queue: a fleet of any size is walked without holding it in memory.
                if len(pending) >= 4 * workers:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
                pending.add(pool.submit(one, name))
            wait(pending)
    finally:
        summary.seconds = time.monotonic() - started
        endpoints.close(summary)
    if matched == 0:
        raise SettingsError(f"no thing in {settings.primary_region} matches QUERY_STRING {settings.query_string!r}")
    return summary
