"""Scheduled in the primary: re-sends the state of every thing whose replica in the secondary drifted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from iot_dr.core import aws
from iot_dr.core.items import ItemWriter
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import ReconcileSettings
from iot_dr.sync.reconcile import Regions, reconcile


@lambda_entry(correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = ReconcileSettings.from_env()
    capture = settings.capture
    regions = Regions(
        aws.client("iot", capture.region),
        aws.client("iot", settings.secondary_region),
        capture.region,
        settings.secondary_region,
    )
    writer = ItemWriter(aws.client("dynamodb", capture.region), capture.replication_table, capture.item_ttl_seconds)
    return asdict(reconcile(regions, writer, settings.query_string))
