"""iot-dr-pubsub.py --use-custom-domain: connect by the custom domain's own name (TLS server name), follow its CNAME
between regions; and a broker unreachable through the DNS-pinning tunnel is reported as unreachable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from failover_support import (
    CNAME,
    PRIMARY_ADDRESS,
    PRIMARY_TARGET,
    SECONDARY_ADDRESS,
    SECONDARY_TARGET,
    free_port,
)

from iot_dr_local.dns_server import KnotDnsServer
from iot_dr_local.mqtt_broker import MosquittoBroker
from iot_dr_local.pki import LocalCA

PUBSUB = Path(__file__).resolve().parents[2] / "source/tools/iot-dr-pubsub.py"


def device_env() -> dict[str, str]:
    """The device's environment without LOG_LEVEL, which a local cloud in this process may have set meanwhile."""
    return {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def wait_for(path: Path, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((r for r in records(path) if predicate(r)), None)
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}:\n{path.read_text()[-3000:]}")


def test_custom_domain_is_the_connection_name_and_its_cname_moves_the_device(
    start_broker: Callable[..., MosquittoBroker], dns_server: KnotDnsServer, local_ca: LocalCA, tmp_path: Path
) -> None:
    device = local_ca.issue_device("custom-domain-device")
    port = free_port(PRIMARY_ADDRESS, SECONDARY_ADDRESS)
    # Like an IoT domain configuration, each region serves a certificate for the custom domain.
    start_broker("primary", PRIMARY_ADDRESS, port, [PRIMARY_TARGET, CNAME])
    start_broker("secondary", SECONDARY_ADDRESS, port, [SECONDARY_TARGET, CNAME])
    out = tmp_path / "device.out"
    argv = [
        sys.executable, str(PUBSUB), "--endpoint", CNAME, "--use-custom-domain", "--dr-mode",
        "--dns-server", f"{dns_server.address}:{dns_server.port}", "--port", str(port),
        "--root-ca", str(local_ca.cert_path), "--cert", str(device.cert_path), "--key", str(device.key_path),
        "--client-id", "custom-domain-device", "--topic", "dr/custom", "--count", "0", "--interval", "0.1",
        "--reconnect-jitter", "0",
    ]  # fmt: skip
    with out.open("wb") as stdout:
        process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=device_env())
    try:
        first = wait_for(out, lambda r: r.get("message") == "CONNECTED", 30, "the first connection")
        assert (first["endpoint"], first["regional_endpoint"], first["region"]) == (CNAME, PRIMARY_TARGET, "us-east-1")
        dns_server.updater().set_cname("iot", SECONDARY_TARGET, 1)
        switch = wait_for(out, lambda r: r.get("message", "").startswith("REGION SWITCH"), 30, "the switch")
        assert switch["message"] == f"REGION SWITCH detected: {PRIMARY_TARGET} -> {SECONDARY_TARGET}"
        second = wait_for(
            out, lambda r: r.get("message") == "CONNECTED" and r.get("region") == "us-west-2", 30, "the reconnection"
        )
        assert (second["endpoint"], second["regional_endpoint"]) == (CNAME, SECONDARY_TARGET)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    summary = next(r["summary"] for r in records(out) if r.get("message") == "summary")
    assert summary["region_switches"] == 1 and summary["received"] > 0


def test_unreachable_broker_behind_the_tunnel_is_reported_as_unreachable(
    dns_server: KnotDnsServer, local_ca: LocalCA
) -> None:
    device = local_ca.issue_device("unreachable-device")
    result = subprocess.run(
        [
            sys.executable, str(PUBSUB), "--endpoint", PRIMARY_TARGET, "--port", str(free_port(PRIMARY_ADDRESS)),
            "--dns-server", f"{dns_server.address}:{dns_server.port}", "--root-ca", str(local_ca.cert_path),
            "--cert", str(device.cert_path), "--key", str(device.key_path), "--count", "1",
        ],
        capture_output=True, text=True, timeout=120, check=False, env=device_env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot connect to {PRIMARY_TARGET}:" in result.stderr
    assert "endpoint unreachable (connection refused or timed out" in result.stderr
    failures = [r for r in records_of(result.stdout) if r.get("message") == "connection attempt failed"]
    # The tunnel's refusal is named for what it is (the awscrt code follows in parentheses); an attempt cut short
    # by a timeout under load may carry another error.
    assert failures and any(r["error"].startswith("endpoint unreachable") for r in failures)


def records_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
