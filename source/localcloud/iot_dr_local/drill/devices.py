"""Simulated devices: ``iot-dr-pubsub.py --dr-mode`` as child processes that follow the failover CNAME and keep
publishing QoS 1 messages; their JSON log lines are the events the drill measures RTO and message loss from."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iot_dr_local.failover import DeviceCertificate


@dataclass(frozen=True)
class DnsTarget:
    """Where the devices resolve the failover CNAME: ``record`` served by ``address:port``; brokers on ``mqtt_port``."""

    record: str
    address: str
    port: int
    mqtt_port: int
    ca_path: Path


class SimulatedDevice:
    """One iot-dr-pubsub.py process publishing every ``interval`` seconds until ``stop``."""

    def __init__(
        self,
        certificate: DeviceCertificate,
        target: DnsTarget,
        log_path: Path,
        interval: float,
        environment: Mapping[str, str],
    ) -> None:
        """``environment``: the device's own; not this process's, which in-process Lambda invocations of the local
        cloud swap for theirs meanwhile (a LOG_LEVEL=WARNING of theirs would silence the events the drill reads)."""
        self.name = certificate.name
        self.log_path = log_path
        argv = [
            sys.executable,
            "-c",
            # iot-dr-pubsub.py's own entry point, from the installed package (the script may not be on PATH).
            "import sys; from iot_dr_cli.pubsub import main; sys.exit(main())",
            "--endpoint",
            target.record,
            "--use-cname",
            "--dr-mode",
            "--dns-server",
            f"{target.address}:{target.port}",
            "--port",
            str(target.mqtt_port),
            "--cert",
            str(certificate.cert_path),
            "--key",
            str(certificate.key_path),
            "--root-ca",
            str(target.ca_path),
            "--client-id",
            certificate.name,
            "--topic",
            f"dt/drill/{certificate.name}",
            "--count",
            "0",
            "--interval",
            str(interval),
            "--reconnect-jitter",
            "0.2",
        ]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(environment)
            )

    def lines(self) -> list[dict[str, Any]]:
        """The device's log so far, one JSON object a line (other lines as ``{"message": text}``)."""
        parsed = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                value = {"message": line}
            parsed.append(value if isinstance(value, dict) else {"message": line})
        return parsed

    def subscribed_since(self, at: float, role: str) -> bool:
        """Whether the device has connected to ``role``'s broker and subscribed there since ``at``."""
        connected = False
        for line in self.lines():
            if line.get("message") == "CONNECTED" and line.get("at", 0) >= at:
                connected = line.get("role") == role
            elif line.get("message") == "SUBSCRIBED" and connected:
                return True
        return False

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """SIGTERM the device (it logs its summary and exits), SIGKILL it after ``timeout``; its summary, if logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for line in reversed(self.lines()):
            if line.get("message") == "summary":
                summary: dict[str, Any] = line["summary"]
                return summary
        return None
