"""GetHealthCheckStatus answered from the Route 53 emulation's probes.

moto answers every GetHealthCheckStatus with one fixed "Success" observation, whatever the target does. Route 53
answers one observation per health checker with that checker's last result
(https://docs.aws.amazon.com/Route53/latest/APIReference/API_GetHealthCheckStatus.html); the emulation has one
checker (``route53.Route53Emulator``), so here the answer is its last probe of the health check: ``Status`` starts
with ``Success`` or ``Failure`` and gives the HTTP status code, ``CheckedTime`` is when the probe started.

Assumed from the API reference, which documents ``Status`` only as a string: a checker that saw the endpoint healthy
reports a status starting with ``Success``, otherwise ``Failure`` (the Route 53 console shows these words). A health
check the emulation does not probe (no failover services, or not one of theirs) keeps moto's answer.
"""

from __future__ import annotations

import datetime
import threading
from http import HTTPStatus
from typing import Any

from moto.core.responses import ActionResult
from moto.route53.responses import Route53

from iot_dr_local.patching import Patches
from iot_dr_local.route53 import ProbeResult, Route53Emulator

CHECKER_REGION = "us-east-1"
CHECKER_ADDRESS = "127.0.0.1"

_patches = Patches()
_lock = threading.Lock()
_emulator: Route53Emulator | None = None


def serve(emulator: Route53Emulator | None) -> None:
    """Answer from ``emulator``'s probes from now on (None: moto's answer again)."""
    global _emulator
    with _lock:
        _emulator = emulator


def status_text(result: ProbeResult) -> str:
    """``StatusReport.Status`` for one probe: the verdict, then the HTTP status the checker got."""
    try:
        reason = HTTPStatus(result.status).phrase
    except ValueError:
        reason = "Unknown"
    verdict = "Success" if result.healthy else "Failure"
    return f"{verdict}: HTTP Status Code {result.status}, {reason}. Resolved IP: {CHECKER_ADDRESS}"


def _last_result(health_check_id: str) -> ProbeResult | None:
    with _lock:
        emulator = _emulator
    return None if emulator is None else emulator.last_result(health_check_id)


def _get_health_check_status(self: Route53) -> ActionResult:
    answered: ActionResult = _patches.original(Route53, "get_health_check_status")(self)
    result = _last_result(self._get_param("HealthCheckId"))
    if result is None:
        return answered
    observation: dict[str, Any] = {
        "Region": CHECKER_REGION,
        "IPAddress": CHECKER_ADDRESS,
        "StatusReport": {
            "Status": status_text(result),
            "CheckedTime": datetime.datetime.fromtimestamp(result.at, tz=datetime.UTC),
        },
    }
    return ActionResult({"HealthCheckObservations": [observation]})


def install() -> None:
    if not _patches.applied:
        _patches.set(Route53, "get_health_check_status", _get_health_check_status)


def uninstall() -> None:
    serve(None)
    _patches.restore()
