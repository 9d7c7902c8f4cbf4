"""Names, addresses and port helpers shared by the failover tests and their fixtures."""

from __future__ import annotations

import socket

from iot_dr_local.mqtt_broker import PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS

PRIMARY_ADDRESS = PRIMARY_BROKER_ADDRESS
SECONDARY_ADDRESS = SECONDARY_BROKER_ADDRESS
ZONE = "iot-dr.test"
PRIMARY_REGION = "us-east-1"
SECONDARY_REGION = "us-west-2"
PRIMARY_TARGET = f"{PRIMARY_REGION}.{ZONE}"
SECONDARY_TARGET = f"{SECONDARY_REGION}.{ZONE}"
CNAME = f"iot.{ZONE}"


def free_port(*addresses: str) -> int:
    """A TCP port free on every address (brokers of both regions listen on the same port, as IoT Core does)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no common free port")


def free_dns_port(address: str) -> int:
    """A port free for both UDP and TCP on ``address`` (DNS serves both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free DNS port")
