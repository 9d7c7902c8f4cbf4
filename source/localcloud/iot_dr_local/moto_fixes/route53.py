"""Route 53: UpdateHealthCheck versions the health check and refuses an edit made against an older version.

moto 5.2.5 leaves ``HealthCheckVersion`` at 1 whatever is updated and ignores the version a caller passes, so an edit
based on stale settings silently overwrites a newer one. Route 53 increments the version with every update and,
when the request names a ``HealthCheckVersion`` that is not the current one, refuses it with
``HealthCheckVersionMismatch`` (HTTP 409)
(https://docs.aws.amazon.com/Route53/latest/APIReference/API_UpdateHealthCheck.html).
"""

from __future__ import annotations

from typing import Any

from moto.route53.exceptions import Route53ClientError
from moto.route53.models import HealthCheck
from moto.route53.responses import Route53

from iot_dr_local.patching import Patches

_patches = Patches()


class HealthCheckVersionMismatch(Route53ClientError):
    """Its HTTP status, 409, comes from the Route 53 service model, as for moto's own errors."""

    def __init__(self) -> None:
        super().__init__(
            "HealthCheckVersionMismatch",
            "The value of HealthCheckVersion in the request doesn't match the value of HealthCheckVersion in the "
            "health check.",
        )


def _update_health_check(self: Route53) -> Any:
    expected = self._get_param("HealthCheckVersion")
    health_check: HealthCheck | None = self.backend.health_checks.get(self._get_param("HealthCheckId"))
    if health_check is not None and expected is not None and int(expected) != health_check.health_check_version:
        raise HealthCheckVersionMismatch()
    answered = _patches.original(Route53, "update_health_check")(self)
    if health_check is not None:
        health_check.health_check_version += 1
    return answered


def install() -> None:
    if not _patches.applied:
        _patches.set(Route53, "update_health_check", _update_health_check)


def uninstall() -> None:
    _patches.restore()
