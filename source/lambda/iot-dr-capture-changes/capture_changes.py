"""EventBridge target in the primary: captures certificates, policies and attachments changed by API calls."""

from __future__ import annotations

from typing import Any

from iot_dr.core import aws
from iot_dr.core.items import ItemWriter
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import CaptureSettings
from iot_dr.primary.capture import capture


@lambda_entry(correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = CaptureSettings.from_env()
    writer = ItemWriter(aws.client("dynamodb", settings.region), settings.replication_table, settings.item_ttl_seconds)
    return capture(aws.client("iot", settings.region), writer, event)
