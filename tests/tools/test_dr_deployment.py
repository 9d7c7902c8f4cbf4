"""test-dr-deployment.py against the local cloud: its real MQTT brokers, DNS server and replication.

The full run passes every check and leaves nothing behind; with the secondary's broker down the pub/sub check there
fails within its timeout, the report says which, the exit code is 1 and the test device is still cleaned up.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_cloud_support import PRIMARY, SECONDARY
from tool_support import run_tool
from waiting import eventually

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.failover import FailoverServices
from iot_dr_local.failover_plan import FailoverSettings
from iot_dr_local.processes import find_binary

pytestmark = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


@pytest.fixture(scope="module")
def services(cloud: LocalCloud) -> Iterator[FailoverServices]:
    directory = Path(tempfile.mkdtemp(prefix="iot-dr-tools-"))
    yield cloud.start_failover(directory, FailoverSettings(mqtt_port=0, dns_port=0))
    # The cloud fixture stops the services with the cloud.


def deployment_args(services: FailoverServices) -> list[str]:
    names = {plan.region: plan.broker_name.rstrip(".") for plan in services.plan.regions}
    broker = services.brokers[PRIMARY].endpoint
    assert services.dns is not None
    return [
        "--endpoint-primary", names[PRIMARY], "--endpoint-secondary", names[SECONDARY],
        "--port", str(broker.port), "--root-ca", str(services.ca.cert_path),
        "--dns-server", f"{services.dns.address}:{services.dns.port}",
    ]  # fmt: skip


def _test_things(iot: Any) -> list[str]:
    return [t["thingName"] for t in iot.list_things()["things"] if t["thingName"].startswith("iot-dr-test-")]


def test_every_check_passes_and_nothing_is_left(
    cloud: LocalCloud,
    services: FailoverServices,
    tool_env: dict[str, str],
    tmp_path: Path,
    primary: Any,
    secondary: Any,
) -> None:
    report_path = tmp_path / "report.json"
    result = run_tool(
        "test-dr-deployment.py", *deployment_args(services), "--timeout", "60", "--report", str(report_path),
        env=tool_env, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["TESTS"] == {
        "DEVICE_REPLICATION": "PASSED",
        "PUBSUB_PRIMARY": "PASSED",
        "PUBSUB_SECONDARY": "PASSED",
        "SHADOW_REPLICATION": "PASSED",
        "DELETE_REPLICATION": "PASSED",
    }
    assert json.loads(result.stdout) == report
    eventually(lambda: not _test_things(primary) and not _test_things(secondary), 60)
    cloud.wait_idle()


def test_a_failed_check_is_reported_and_cleaned_up(
    cloud: LocalCloud, services: FailoverServices, tool_env: dict[str, str], primary: Any, secondary: Any
) -> None:
    services.brokers[SECONDARY].stop()
    try:
        result = run_tool(
            "test-dr-deployment.py", *deployment_args(services), "--timeout", "15", env=tool_env, timeout=400
        )
    finally:
        services.brokers[SECONDARY].start()
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["TESTS"]["DEVICE_REPLICATION"] == "PASSED"
    assert report["TESTS"]["PUBSUB_PRIMARY"] == "PASSED"
    assert report["TESTS"]["PUBSUB_SECONDARY"] == "FAILED"
    assert "PUBSUB_SECONDARY" in report["FAILURES"]
    # Cleanup ran although a check failed: nothing of the run is left in either region.
    eventually(lambda: not _test_things(primary) and not _test_things(secondary), 60)
    cloud.wait_idle()


def test_missing_endpoint_variable_is_a_usage_error(tool_env: dict[str, str]) -> None:
    env = {k: v for k, v in tool_env.items() if k != "IOT_ENDPOINT_SECONDARY"}
    result = run_tool("test-dr-deployment.py", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "test-dr-deployment.py: error: IOT_ENDPOINT_SECONDARY is not set: source toolsrc (. toolsrc) or pass it as "
        "an argument"
    )
