"""Lambda entry point behind API Gateway ``GET /health-check``, which Route 53 probes to decide failover; in canary
mode also the target of an EventBridge schedule whose results feed the alarm a Route 53 health check watches."""

from __future__ import annotations

import logging
from typing import Any

from iot_dr.core.logs import lambda_entry
from iot_dr.health import health_check

LOG = logging.getLogger(__name__)

# Init phase, once per execution environment: the credentials are read before the first request starts its budget.
health_check.warm_up()


@lambda_entry(correlation_id_path="requestContext.requestId || id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Never raises: API Gateway would turn an exception into a 502 that says nothing about the region."""
    try:
        settings = health_check.HealthCheckSettings.from_env()
    except ValueError as err:
        LOG.error("health checker misconfigured", extra={"detail": str(err)})
        return health_check.misconfigured_response()
    if health_check.is_scheduled_event(event):
        return health_check.run_canary(settings)
    return health_check.handle_request(event, settings)
