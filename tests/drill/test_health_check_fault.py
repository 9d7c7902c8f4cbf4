"""The drill's simulated outage against AWS: the primary health check edited to fail and restored exactly, with a
record on disk that names the health check but holds no part of its secret (moto's Route 53 stores the edits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from iot_dr_local.drill import health_check_fault
from iot_dr_local.drill.health_check_fault import MARKER, RECORD_FILE, FaultError, HealthCheckFault

SECRET = "s3cr3t-value-never-on-disk"
PATH = f"/v1/health-check?hashme={SECRET}"


@pytest.fixture
def route53() -> Any:
    with mock_aws():
        yield boto3.client("route53", region_name="us-east-1")


def _https_check(route53: Any) -> str:
    config = {"Type": "HTTPS", "FullyQualifiedDomainName": "abc.execute-api.us-east-1.amazonaws.com"}
    created = route53.create_health_check(
        CallerReference="https", HealthCheckConfig={**config, "ResourcePath": PATH, "Port": 443}
    )
    return str(created["HealthCheck"]["Id"])


def _config(route53: Any, check_id: str) -> dict[str, Any]:
    return dict(route53.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"])


def test_the_path_gets_the_marker_and_loses_exactly_it_on_restore(route53: Any, tmp_path: Path) -> None:
    check_id = _https_check(route53)

    fault = health_check_fault.fail(route53, check_id, tmp_path, "run1")

    assert _config(route53, check_id)["ResourcePath"] == PATH + MARKER
    record = (tmp_path / RECORD_FILE).read_text()
    assert SECRET not in record and SECRET[-1:] + MARKER not in record
    assert (tmp_path / RECORD_FILE).stat().st_mode & 0o077 == 0
    assert HealthCheckFault.read(tmp_path) == fault
    assert (fault.health_check_id, fault.method, fault.run_id) == (check_id, "resource-path", "run1")
    with pytest.raises(FaultError, match="already carries a drill's edit"):
        health_check_fault.fail(route53, check_id, tmp_path, "run2")

    assert health_check_fault.restore(route53, fault, tmp_path) is True
    assert _config(route53, check_id)["ResourcePath"] == PATH
    assert HealthCheckFault.read(tmp_path) is None
    # Restoring again (a restore after the drill restored it itself) changes nothing.
    assert health_check_fault.restore(route53, fault, tmp_path) is False
    assert _config(route53, check_id)["ResourcePath"] == PATH


def test_a_health_check_without_a_path_is_inverted_and_uninverted(route53: Any, tmp_path: Path) -> None:
    created = route53.create_health_check(
        CallerReference="alarm",
        HealthCheckConfig={
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": "us-east-1", "Name": "canary"},
            "InsufficientDataHealthStatus": "Unhealthy",
        },
    )
    check_id = created["HealthCheck"]["Id"]

    fault = health_check_fault.fail(route53, check_id, tmp_path, "run1")
    assert fault.method == "inverted" and _config(route53, check_id)["Inverted"] is True

    assert health_check_fault.restore(route53, fault, tmp_path) is True
    assert _config(route53, check_id)["Inverted"] is False


def test_a_record_that_is_not_a_drills_is_refused(tmp_path: Path) -> None:
    (tmp_path / RECORD_FILE).write_text('{"health_check_id": "x"}')
    with pytest.raises(FaultError, match="is not a drill's health-check record"):
        HealthCheckFault.read(tmp_path)
