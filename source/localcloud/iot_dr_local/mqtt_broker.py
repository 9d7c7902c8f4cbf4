"""A mosquitto broker standing in for one region's AWS IoT Core data endpoint.

Each region gets its own loopback address (127.0.0.2 primary, 127.0.0.3 secondary by convention) and requires mutual
TLS with certificates from the local CA, so devices and the health checker authenticate as they do against IoT Core.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from iot_dr_local.pki import LocalCA
from iot_dr_local.ports import Port
from iot_dr_local.processes import Daemon, check_traversable, make_readable_by, require_binary

MOSQUITTO_USER = "mosquitto"
# Each region's broker listens on its own loopback address, on the same port, as regional IoT endpoints do.
PRIMARY_BROKER_ADDRESS = "127.0.0.2"
SECONDARY_BROKER_ADDRESS = "127.0.0.3"


@dataclass(frozen=True)
class BrokerEndpoint:
    """Where a client connects and which CA it trusts."""

    address: str
    port: int
    ca_path: Path


def port_open(address: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``address:port``: the broker's readiness check."""
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoBroker(Daemon):
    """One mosquitto process with a mutual-TLS listener on ``address:port``; its files live in ``directory``.

    ``server_names`` are the DNS names the server certificate is valid for (besides ``address``), i.e. the names a
    device may resolve to reach this broker. ``argv`` and ``log_path`` start the same broker again elsewhere.
    """

    def __init__(
        self,
        name: str,
        address: str,
        port: int,
        directory: Path,
        ca: LocalCA,
        server_names: list[str],
    ) -> None:
        binary = require_binary("mosquitto", "mosquitto")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        check_traversable(directory)
        server = ca.issue_server(f"broker-{name}", server_names, [address])
        ca_path = directory / "ca.pem"
        cert_path = directory / "server.pem"
        key_path = directory / "server.key"
        shutil.copyfile(ca.cert_path, ca_path)
        shutil.copyfile(server.cert_path, cert_path)
        shutil.copyfile(server.key_path, key_path)
        ca_path.chmod(0o644)
        cert_path.chmod(0o644)
        key_path.chmod(0o600)
        conf_path = directory / "mosquitto.conf"
        conf_path.write_text(
            "\n".join(
                [
                    "per_listener_settings true",
                    "persistence false",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "connection_messages true",
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                    f"listener {port} {address}",
                    "protocol mqtt",
                    f"cafile {ca_path}",
                    f"certfile {cert_path}",
                    f"keyfile {key_path}",
                    "require_certificate true",
                    "use_identity_as_username true",
                    "allow_anonymous false",
                    "",
                ]
            )
        )
        conf_path.chmod(0o644)
        make_readable_by([ca_path, cert_path, key_path, conf_path], MOSQUITTO_USER)
        self.endpoint = BrokerEndpoint(address, port, ca_path)
        super().__init__(
            f"mosquitto-{name}",
            [binary, "-c", str(conf_path)],
            directory / "mosquitto.log",
            lambda: port_open(address, port),
            [Port(address, port)],
        )

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)
