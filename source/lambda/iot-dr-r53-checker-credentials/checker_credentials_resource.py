"""Custom resources that generate the health checker's key and CSR, and store its certificate with the key."""

from __future__ import annotations

from typing import Any

from iot_dr.core import aws
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import RegionSettings
from iot_dr.health import checker_credentials


@lambda_entry(correlation_id_path="RequestId")
def handler(event: dict[str, Any], context: Any) -> None:
    region = RegionSettings.from_env().region
    checker_credentials.handle_event(event, context, aws.client("iot", region), aws.client("secretsmanager", region))
