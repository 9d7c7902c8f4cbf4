"""EventBridge target in the primary: captures certificates, policies and attachments changed by API calls."""

from __future__ import annotations

from typing import Any

from iot_dr import aws
from iot_dr.capture import capture
from iot_dr.items import ItemWriter
from iot_dr.logs import configure_logging
from iot_dr.settings import CaptureSettings


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    configure_logging()
    settings = CaptureSettings.from_env()
    writer = ItemWriter(aws.client("dynamodb", settings.region), settings.replication_table, settings.item_ttl_seconds)
    return capture(aws.client("iot", settings.region), writer, event)
