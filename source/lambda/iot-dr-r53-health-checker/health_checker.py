"""Lambda entry point behind API Gateway ``GET /health-check``; Route 53 probes it to decide failover."""

from __future__ import annotations

from typing import Any

from iot_dr import health_check
from iot_dr.logs import configure_logging


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    configure_logging()
    if not isinstance(event, dict) or "httpMethod" not in event:
        raise ValueError("expected an API Gateway REST proxy event")
    settings = health_check.HealthCheckSettings.from_env()
    return health_check.handle_request(event, settings)
