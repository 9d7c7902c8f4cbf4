"""Health-check probes run the handler in a worker process: a native crash there fails one probe, nothing more."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iot_dr_local.route53 import HandlerProbe, HealthCheckConfig, Route53Emulator

HANDLER = """
import os
import signal


def handler(event, context):
    if os.path.exists(os.environ["CRASH_FLAG"]):
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"statusCode": 200, "body": str(os.getpid()), "headers": {"X-Check": os.environ["CHECK_NAME"]}}
"""


class NoDns:
    def set_cname(self, name: str, target: str, ttl: int) -> None:
        raise AssertionError("no failover record is configured")


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[HandlerProbe]:
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "checker.py").write_text(HANDLER)
    environment = {"CRASH_FLAG": str(tmp_path / "crash"), "CHECK_NAME": "primary"}
    handler_probe = HandlerProbe(tmp_path / "task", "checker.handler", environment)
    yield handler_probe
    handler_probe.close()


def test_the_handler_runs_in_another_process_with_the_given_environment(probe: HandlerProbe) -> None:
    response = probe({})

    assert response["statusCode"] == 200
    assert response["headers"] == {"X-Check": "primary"}
    assert int(response["body"]) != os.getpid()


def test_a_segfault_in_the_probe_is_a_failed_probe_and_the_next_probe_starts_afresh(
    probe: HandlerProbe, tmp_path: Path
) -> None:
    emulator = Route53Emulator(NoDns())
    emulator.add_health_check(HealthCheckConfig("check", "/health", failure_threshold=1), probe)
    healthy = emulator.probe_once("check")
    (tmp_path / "crash").touch()

    crashed = emulator.probe_once("check")
    (tmp_path / "crash").unlink()
    recovered = emulator.probe_once("check")

    assert (healthy.status, crashed.status, recovered.status) == (200, 502, 200)
    assert not crashed.healthy
