"""Simulated devices: ``iot-dr-pubsub.py --dr-mode`` as child processes that follow the failover CNAME and keep
publishing QoS 1 messages; their JSON log lines are the events the drill measures RTO and message loss from."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iot_dr_local.processes import watch

if TYPE_CHECKING:
    from iot_dr_local.failover import DeviceCertificate


class ClientsNotSwitched(Exception):
    """Simulated devices did not get where they were expected in time; the message names them."""


@dataclass(frozen=True)
class DnsTarget:
    """Where the devices resolve the failover CNAME ``record``: through ``dns_server`` (address, port; None: the
    system's resolver), then connect on ``mqtt_port`` (None: iot-dr-pubsub.py's 8883) trusting ``ca_path`` (None:
    the system's trust store, which holds the Amazon root CAs AWS IoT's endpoints chain to)."""

    record: str
    dns_server: tuple[str, int] | None
    mqtt_port: int | None
    ca_path: Path | None


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
            *(["--dns-server", f"{target.dns_server[0]}:{target.dns_server[1]}"] if target.dns_server else []),
            *(["--port", str(target.mqtt_port)] if target.mqtt_port else []),
            *(["--root-ca", str(target.ca_path)] if target.ca_path else []),
            "--cert",
            str(certificate.cert_path),
            "--key",
            str(certificate.key_path),
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
        # A drill that is killed must not leave its devices publishing with their credentials.
        self._watchdog = watch(self.process.pid, log_path)

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
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout)  # it exits once the device has
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
        for line in reversed(self.lines()):
            if line.get("message") == "summary":
                summary: dict[str, Any] = line["summary"]
                return summary
        return None


class Clients:
    """The drill's simulated devices, started together, waited for together and stopped together."""

    def __init__(self) -> None:
        self.devices: list[SimulatedDevice] = []
        self.summaries: dict[str, dict[str, Any] | None] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}

    def start(
        self,
        certificates: Sequence[DeviceCertificate],
        target: DnsTarget,
        log_dir: Path,
        interval: float,
        environment: Mapping[str, str],
    ) -> None:
        """One device per certificate, its client ID the certificate's name, its log ``log_dir/<name>.log``."""
        for certificate in certificates:
            log = log_dir / f"{certificate.name}.log"
            self.devices.append(SimulatedDevice(certificate, target, log, interval, environment))

    def wait(self, role: str, since: float, what: str, timeout: float) -> None:
        """Until every device subscribed on ``role``'s broker after ``since``; ClientsNotSwitched after ``timeout``
        seconds, naming the devices that did not ``what``."""
        deadline = time.monotonic() + timeout
        pending = list(self.devices)
        while pending and time.monotonic() < deadline:
            pending = [device for device in pending if not device.subscribed_since(since, role)]
            if pending:
                time.sleep(0.1)
        if pending:
            raise ClientsNotSwitched(
                f"{len(pending)} simulated device(s) did not {what} within {timeout:.0f} s: "
                f"{', '.join(device.name for device in pending)}"
            )

    def current_logs(self) -> dict[str, list[dict[str, Any]]]:
        """Each device's log: as kept at ``stop``, or as written so far."""
        return self.logs or {device.name: device.lines() for device in self.devices}

    def stop(self, keep_logs_in: Path) -> None:
        """Stop every device (each logs its summary), keep their logs in memory and copies in ``keep_logs_in``: every
        RTO of the report can be checked against them."""
        for device in self.devices:
            self.summaries[device.name] = device.stop()
        self.logs = {device.name: device.lines() for device in self.devices}
        if self.devices:
            keep_logs_in.mkdir(exist_ok=True)
            for device in self.devices:
                shutil.copyfile(device.log_path, keep_logs_in / device.log_path.name)
