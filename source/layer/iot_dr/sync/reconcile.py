"""The scheduled missing-device replication: an incremental sweep of the fleet on the region syncs' engine.

Event sources are at-least-once but not perfect (CloudTrail delivery to EventBridge is best effort, and things may
predate the solution). Each scheduled run, in the primary, compares devices whole (``iot_dr.fleet.device``: thing,
type, groups, certificates, policies, classic and named shadows) in thing-name order from where the last run
stopped, feeds each drifted one to the pipeline through the global table (``iot_dr.sync.feed``; it is read-only in
the secondary) with removals of the group memberships only its replica has, and stops well before the function's
timeout. A named shadow only the replica has stays (the pipeline would need the deleted shadow's version). The
cursor lives in a DynamoDB item (``iot_dr.sync.cursor``); when a run reaches the end of the fleet the next one
starts again from the beginning.

A thing present in the secondary and absent from the primary is an orphan: logged, counted in the
``ThingsOnlyInSecondary`` metric, and deleted (its thing, shadows and the certificates the primary no longer has,
through the pipeline) only when the stack's ``ReconcileDeleteOrphans`` parameter is ``true``: after a failover, the
secondary may hold devices created there on purpose.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from iot_dr.core import aws
from iot_dr.core.metrics import emf_line
from iot_dr.core.settings import ReconcileSettings
from iot_dr.fleet.device import Difference
from iot_dr.fleet.drift import Region, compare_device
from iot_dr.fleet.rate_limit import RateLimiter
from iot_dr.primary.snapshots import certificate_snapshot, thing_snapshot
from iot_dr.secondary.replicate.context import certificate_id_of, paginate
from iot_dr.sync.copy import DeviceGone
from iot_dr.sync.cursor import CursorMoved, CursorStore
from iot_dr.sync.engine import device_names
from iot_dr.sync.feed import TableFeed

LOG = logging.getLogger(__name__)

# Devices compared at once. The sweep shares the account's quotas with the replication, so it takes half of each
# (SWEEP_SHARE): at AWS's defaults about 5 devices per second, which 4 workers reach at ~0.1 s per call.
SWEEP_WORKERS = 4
SWEEP_SHARE = 0.5
# A run starts no new batch once it has used this share of the time it had left when it started: the rest covers
# the batch in flight (under throttling, retries back off for seconds) and saving the cursor.
WORK_SHARE = 2 / 3
METRIC_DIMENSIONS = {"Sweep": "MissingDeviceReplication"}


@dataclass
class SweepReport:
    """One run of the sweep. ``start``: the cursor it resumed from (None: start of a round); ``cursor``: the last
    device compared, None when the run reached the end of the fleet (``complete``); ``orphans``: things only in the
    secondary; ``deleted``: orphans queued for deletion (opt-in)."""

    start: str | None = None
    checked: int = 0
    drifted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    cursor: str | None = None
    complete: bool = False
    cursor_saved: bool = False


def extra_groups(differences: list[Difference]) -> list[str]:
    """Groups the replica belongs to and the primary's thing does not, from a device's differences."""
    for difference in differences:
        if difference.field == "thingGroups":
            return sorted(set(difference.secondary) - set(difference.primary))
    return []


def delete_orphan(primary: Region, secondary: Region, feed: TableFeed, name: str) -> None:
    """Queue the orphan ``name`` for deletion in the secondary: its thing (the secondary deletes its shadows with it)
    and those of its certificates that the primary does not have. A thing that reappeared in the primary meanwhile
    is written as it is there instead."""
    snapshots = [thing_snapshot(primary.iot, name)]
    for arn in paginate(secondary.iot, "list_thing_principals", "principals", thingName=name):
        certificate_id = certificate_id_of(arn)
        if certificate_id is None:
            continue
        certificate = certificate_snapshot(primary.iot, certificate_id)
        if not certificate["exists"]:
            snapshots.append(certificate)
    feed.writer.put(snapshots)


def sweep(
    primary: Region,
    secondary: Region,
    feed: TableFeed,
    query_string: str,
    cursor: str | None,
    stop: Callable[[], bool],
    delete_orphans: bool = False,
    workers: int = SWEEP_WORKERS,
) -> SweepReport:
    """Compare the devices after ``cursor`` (thing-name order, both regions' things for ``query_string``) in batches
    of ``workers`` until ``stop()`` says so (asked after each batch, so every run moves on) or the fleet ends, and
    feed each drifted device to the pipeline.

    Enumerating the names costs one call per 100 things in each region; only the compared devices cost their reads,
    so a run's work is bounded by ``stop`` whatever the fleet's size.
    """
    report = SweepReport(start=cursor)
    names = sorted(set(device_names(primary.iot, query_string)) | set(device_names(secondary.iot, query_string)))
    pending = [name for name in names if cursor is None or name > cursor]

    def one(name: str) -> None:
        drift = compare_device(primary, secondary, name)
        if drift.error is not None:
            report.failed[name] = drift.error
            return
        if drift.in_sync:
            return
        [first] = drift.differences[:1]
        if first.field == "thing" and first.primary is False:
            LOG.warning("thing only in the secondary", extra={"thingName": name, "delete": delete_orphans})
            report.orphans.append(name)
            if delete_orphans:
                delete_orphan(primary, secondary, feed, name)
                report.deleted.append(name)
            return
        LOG.info("drift found", extra={"thingName": name, "fields": [d.field for d in drift.differences]})
        report.drifted.append(name)
        try:
            feed.apply(name, existing=True)
            extra = extra_groups(drift.differences)
            if extra:
                feed.remove_memberships(name, extra)
        except DeviceGone:
            return  # deleted in the primary since it was read: the pipeline has its deletion
        except Exception as err:  # reported with the device; the next round compares it again
            report.failed[name] = f"{type(err).__name__}: {err}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(pending), workers):
            if start and stop():
                break
            batch = pending[start : start + workers]
            list(pool.map(one, batch))
            report.checked += len(batch)
            report.cursor = batch[-1]
        else:
            report.cursor, report.complete = None, True
    for found in (report.drifted, report.orphans, report.deleted):
        found.sort()
    LOG.info(
        "swept",
        extra={
            "checked": report.checked,
            "drifted": len(report.drifted),
            "orphans": len(report.orphans),
            "cursor": report.cursor,
        },
    )
    return report


def time_budget(remaining_ms: Callable[[], int]) -> Callable[[], bool]:
    """A ``stop`` for ``sweep``: true once ``WORK_SHARE`` of the time left at this call has passed
    (``remaining_ms``: the Lambda context's ``get_remaining_time_in_millis``)."""
    stop_at = remaining_ms() * (1 - WORK_SHARE)
    return lambda: remaining_ms() <= stop_at


def report_metrics(report: SweepReport, stream: TextIO | None = None) -> None:
    """The run's figures as embedded-metric-format lines (``iot_dr.core.metrics``)."""
    for metric, value in (
        ("DevicesCompared", report.checked),
        ("DevicesDrifted", len(report.drifted)),
        ("DevicesFailed", len(report.failed)),
        ("ThingsOnlyInSecondary", len(report.orphans)),
        ("ThingsDeletedFromSecondary", len(report.deleted)),
    ):
        print(emf_line(metric, value, METRIC_DIMENSIONS), file=stream or sys.stdout, flush=True)


def scheduled_sweep(settings: ReconcileSettings, remaining_ms: Callable[[], int]) -> dict[str, Any]:
    """One scheduled run: load the cursor, sweep until the time budget is spent, save the cursor, report."""
    stop = time_budget(remaining_ms)
    capture = settings.capture
    primary = Region.limited(capture.region, RateLimiter(share=SWEEP_SHARE))
    secondary = Region.limited(settings.secondary_region, RateLimiter(share=SWEEP_SHARE))
    dynamodb = aws.client("dynamodb", capture.region)
    store = CursorStore(dynamodb, settings.cursor_table)
    loaded = store.load(settings.query_string)
    feed = TableFeed(primary, dynamodb, capture.replication_table, capture.item_ttl_seconds)
    started = time.monotonic()
    report = sweep(
        primary, secondary, feed, settings.query_string, loaded.cursor, stop, delete_orphans=settings.delete_orphans
    )
    try:
        store.save(loaded, settings.query_string, report.cursor, report.complete)
        report.cursor_saved = True
    except CursorMoved as err:
        LOG.warning("cursor not saved", extra={"reason": str(err)})
    report_metrics(report)
    return {**asdict(report), "seconds": round(time.monotonic() - started, 3)}
