"""Missing-device replication: finds things whose replica drifted and feeds fresh snapshots to the pipeline.

Event sources are at-least-once but not perfect (CloudTrail delivery to EventBridge is best effort, and things
may predate the solution). This scheduled sweep runs in the primary, compares each thing with its replica
(read-only in the secondary) and, for every drifted thing, writes snapshots of the thing, its certificates,
their policies and attachments; the normal pipeline then applies them.

``sweep`` is the same check on the region syncs' engine: the whole device layer (types, groups, memberships,
shadows too), a bounded number of devices per run from a cursor, and things found only in the secondary reported
(deleted only on request).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iot_dr.core import metrics
from iot_dr.core.arns import rewrite_policy_document
from iot_dr.core.items import ItemWriter
from iot_dr.fleet.drift import Region, compare_device
from iot_dr.health.checker_identity import without_checker_things
from iot_dr.primary.snapshots import (
    certificate_snapshot,
    policy_snapshot,
    policy_targets_snapshot,
    thing_principals_snapshot,
    thing_snapshot,
)
from iot_dr.secondary.replicate.certificates import secondary_status
from iot_dr.secondary.replicate.context import certificate_id_of, describe_or_none, paginate
from iot_dr.sync.engine import device_names
from iot_dr.sync.feed import TableFeed

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient

LOG = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What a reconciliation did: things checked, those that drifted, and items written to the replication table."""

    checked: int = 0
    drifted: list[str] = field(default_factory=list)
    items_written: int = 0


@dataclass(frozen=True)
class Regions:
    """The IoT clients and names of both regions."""

    primary_iot: IoTClient
    secondary_iot: IoTClient
    primary_region: str
    secondary_region: str


def primary_thing_names(iot: IoTClient, query_string: str) -> Iterator[str]:
    """Things in the primary: from the fleet index when registry indexing is on, else ListThings."""
    mode = iot.get_indexing_configuration().get("thingIndexingConfiguration", {}).get("thingIndexingMode", "OFF")
    if mode == "OFF":
        for thing in paginate(iot, "list_things", "things"):
            yield thing["thingName"]
        return
    token: Any = None  # a page's nextToken (str) or None
    while True:
        kwargs: dict[str, Any] = {"indexName": "AWS_Things", "queryString": query_string, "maxResults": 100}
        page = iot.search_index(**kwargs, **({"nextToken": token} if token else {}))
        for thing in page.get("things", []):
            yield thing["thingName"]
        token = page.get("nextToken")
        if not token:
            return


def _certificates(iot: IoTClient, thing: str) -> dict[str, str]:
    """Certificate ID → principal ARN of the certificates attached to ``thing``."""
    return {
        certificate_id: arn
        for arn in paginate(iot, "list_thing_principals", "principals", thingName=thing)
        if (certificate_id := certificate_id_of(arn))
    }


def _attached_policies(iot: IoTClient, target: str) -> set[str]:
    return {p["policyName"] for p in paginate(iot, "list_attached_policies", "policies", target=target)}


def _default_document(iot: IoTClient, policy: str) -> str | None:
    described = describe_or_none(iot.get_policy, policyName=policy)
    return None if described is None else json.dumps(json.loads(described["policyDocument"]), sort_keys=True)


def drift(regions: Regions, thing: str) -> str | None:
    """Why the replica of ``thing`` differs from the primary, or None if it matches."""
    primary, secondary = regions.primary_iot, regions.secondary_iot
    source = describe_or_none(primary.describe_thing, thingName=thing)
    replica = describe_or_none(secondary.describe_thing, thingName=thing)
    if source is None:
        return None
    if replica is None:
        return "thing missing"
    if (source.get("attributes") or {}) != (replica.get("attributes") or {}):
        return "attributes differ"
    if source.get("thingTypeName") != replica.get("thingTypeName"):
        return "thing type differs"
    source_certificates, replica_certificates = _certificates(primary, thing), _certificates(secondary, thing)
    if set(source_certificates) != set(replica_certificates):
        return "certificates differ"
    for certificate_id, arn in source_certificates.items():
        source_status = primary.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
        replica_status = secondary.describe_certificate(certificateId=certificate_id)["certificateDescription"][
            "status"
        ]
        if secondary_status(source_status) != replica_status:
            return f"certificate {certificate_id} status differs"
        policies = _attached_policies(primary, arn)
        if policies != _attached_policies(secondary, replica_certificates[certificate_id]):
            return f"policies of certificate {certificate_id} differ"
        for policy in policies:
            source_document = _default_document(primary, policy)
            wanted = source_document and json.dumps(
                json.loads(rewrite_policy_document(source_document, regions.primary_region, regions.secondary_region)),
                sort_keys=True,
            )
            if wanted != _default_document(secondary, policy):
                return f"policy {policy} differs"
    return None


def thing_snapshots(iot: IoTClient, thing: str) -> list[dict[str, Any]]:
    """Everything the secondary needs to rebuild ``thing`` with its certificates and policies."""
    snapshots = [thing_snapshot(iot, thing)]
    for certificate_id, arn in _certificates(iot, thing).items():
        snapshots.append(certificate_snapshot(iot, certificate_id))
        snapshots.extend(policy_snapshot(iot, policy) for policy in sorted(_attached_policies(iot, arn)))
        snapshots.append(policy_targets_snapshot(iot, arn))
    snapshots.append(thing_principals_snapshot(iot, thing))
    return snapshots


def reconcile(regions: Regions, writer: ItemWriter, query_string: str) -> ReconcileReport:
    """Compare every primary thing matching ``query_string`` with its replica and write fresh snapshots of each
    that drifted to the replication table; returns the report. ClientError propagates."""
    report = ReconcileReport()
    for thing in without_checker_things(primary_thing_names(regions.primary_iot, query_string)):
        report.checked += 1
        reason = drift(regions, thing)
        if reason is None:
            continue
        LOG.info("drift found", extra={"thingName": thing, "reason": reason})
        report.drifted.append(thing)
        report.items_written += writer.put(thing_snapshots(regions.primary_iot, thing))
    LOG.info(
        "reconciled",
        extra={"checked": report.checked, "drifted": len(report.drifted), "itemsWritten": report.items_written},
    )
    metrics.count_drift(writer.table_name, len(report.drifted))
    return report


@dataclass
class SweepReport:
    """One bounded run of the sweep. ``cursor``: the last device compared (None when the sweep went round the whole
    fleet and starts again from the beginning next time); ``orphans``: things in the secondary that the primary no
    longer has, found when the sweep completes a round; ``deleted``: those queued for deletion (opt-in)."""

    checked: int = 0
    drifted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    cursor: str | None = None


def sweep(
    primary: Region,
    secondary: Region,
    feed: TableFeed,
    query_string: str,
    cursor: str | None,
    budget: int,
    delete_orphans: bool = False,
) -> SweepReport:
    """Compare at most ``budget`` devices (whole device layer, ``iot_dr.fleet.device``) in thing-name order after
    ``cursor``, and feed each drifted one to the pipeline through ``feed``. When the round reaches the end of the
    fleet, things present only in the secondary are reported, and queued for deletion if ``delete_orphans``.

    Enumerating names costs one call per 100 things; only the compared devices cost their reads, so a run's work is
    bounded by ``budget`` whatever the fleet's size.
    """
    if budget < 1:
        raise ValueError(f"budget must be at least 1, got {budget}")
    report = SweepReport()
    names = sorted(set(device_names(primary.iot, query_string)))
    pending = [name for name in names if cursor is None or name > cursor]
    for name in pending[:budget]:
        report.checked += 1
        report.cursor = name
        drift = compare_device(primary, secondary, name)
        if drift.error is not None:
            report.failed[name] = drift.error
            continue
        if drift.in_sync:
            continue
        LOG.info("drift found", extra={"thingName": name, "fields": [d.field for d in drift.differences]})
        report.drifted.append(name)
        try:
            feed.apply(name, existing=True)
        except Exception as err:  # reported with the device; the next round compares it again
            report.failed[name] = f"{type(err).__name__}: {err}"
    if len(pending) <= budget:
        report.cursor = None
        present = set(names)
        report.orphans = sorted(set(device_names(secondary.iot, query_string)) - present)
        for name in report.orphans:
            LOG.warning("thing only in the secondary", extra={"thingName": name, "delete": delete_orphans})
            if delete_orphans:
                feed.writer.put([thing_snapshot(primary.iot, name)])
                report.deleted.append(name)
    LOG.info(
        "swept",
        extra={"checked": report.checked, "drifted": len(report.drifted), "orphans": len(report.orphans)},
    )
    return report
