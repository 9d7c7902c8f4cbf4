"""The simulated outage of a drill against AWS: the primary's Route 53 health check made to fail, and undone.

The guide's "Failover testing" makes the primary's health check fail by editing its path in the Route 53 console
(deleting the last character of the secret it presents). The drill makes the same kind of edit through the API and
keeps it reversible without recording any part of the secret: it appends ``MARKER`` to the resource path, so the
health checker sees a wrong secret and answers 403, and restoring removes exactly that suffix. A health check with
no resource path (the stack's ``cloudwatch-alarm`` mode watches a CloudWatch alarm) is inverted instead, and
restored by clearing ``Inverted``. Both are ``UpdateHealthCheck`` edits, with ``HealthCheckVersion`` so that a
concurrent edit by someone else makes the call fail instead of being overwritten
(https://docs.aws.amazon.com/cli/v1/reference/route53/update-health-check.html).

Before the edit, ``RECORD_FILE`` is written in the report directory; it is removed once the health check is restored.
A drill that was killed leaves it behind, and ``iot-dr drill --restore --report DIR`` undoes the edit from it (and
deletes the test devices of that run).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MARKER = "-iot-dr-drill-outage"
RECORD_FILE = "health-check-fault.json"
RESOURCE_PATH, INVERTED = "resource-path", "inverted"


class FaultError(Exception):
    """The health check cannot be failed (or restored) safely; the message is for the user."""


@dataclass(frozen=True)
class HealthCheckFault:
    """What the drill changed: ``method`` is ``RESOURCE_PATH`` (``MARKER`` appended) or ``INVERTED``; ``run_id``
    names the drill run, whose test devices a restore also removes."""

    health_check_id: str
    method: str
    marker: str
    applied_at: float
    run_id: str

    @classmethod
    def read(cls, directory: Path) -> HealthCheckFault | None:
        """The record in ``directory``, None when there is none; FaultError when it is not one of ours."""
        try:
            data = json.loads((directory / RECORD_FILE).read_text())
            return cls(**data)
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, TypeError) as err:
            raise FaultError(f"{directory / RECORD_FILE} is not a drill's health-check record: {err}") from err

    def write(self, directory: Path) -> None:
        """Atomically, readable by its owner only (it names the health check, never its secret)."""
        write_private_json(directory / RECORD_FILE, asdict(self))


def write_private_json(path: Path, document: dict[str, Any]) -> None:
    """``document`` as ``path``, whole or not at all (written to a temporary file, synced, renamed), mode 0600."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(document, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _health_check(route53: Any, health_check_id: str) -> tuple[dict[str, Any], int]:
    check = route53.get_health_check(HealthCheckId=health_check_id)["HealthCheck"]
    return check["HealthCheckConfig"], int(check.get("HealthCheckVersion", 1))


def fail(route53: Any, health_check_id: str, directory: Path, run_id: str) -> HealthCheckFault:
    """Make the health check fail (see the module docstring); the record is on disk before the edit is made.

    Raises FaultError when the health check already carries a drill's edit (restore it first)."""
    config, version = _health_check(route53, health_check_id)
    method = RESOURCE_PATH if config.get("ResourcePath") else INVERTED
    if method == RESOURCE_PATH and str(config["ResourcePath"]).endswith(MARKER):
        raise FaultError(
            f"health check {health_check_id} already carries a drill's edit: run iot-dr drill --restore first"
        )
    if method == INVERTED and config.get("Inverted"):
        raise FaultError(f"health check {health_check_id} is already inverted; the drill leaves it alone")
    fault = HealthCheckFault(health_check_id, method, MARKER, time.time(), run_id)
    fault.write(directory)
    if method == RESOURCE_PATH:
        edit: dict[str, Any] = {"ResourcePath": str(config["ResourcePath"]) + MARKER}
    else:
        edit = {"Inverted": True}
    route53.update_health_check(HealthCheckId=health_check_id, HealthCheckVersion=version, **edit)
    return fault


def restore(route53: Any, fault: HealthCheckFault, directory: Path) -> bool:
    """Undo ``fault`` if the health check still carries it, then remove the record; whether an edit was undone."""
    config, version = _health_check(route53, fault.health_check_id)
    edit: dict[str, Any] = {}
    path = str(config.get("ResourcePath") or "")
    if fault.method == RESOURCE_PATH and path.endswith(fault.marker):
        edit = {"ResourcePath": path[: -len(fault.marker)]}
    elif fault.method == INVERTED and config.get("Inverted"):
        edit = {"Inverted": False}
    if edit:
        route53.update_health_check(HealthCheckId=fault.health_check_id, HealthCheckVersion=version, **edit)
    (directory / RECORD_FILE).unlink(missing_ok=True)
    return bool(edit)
