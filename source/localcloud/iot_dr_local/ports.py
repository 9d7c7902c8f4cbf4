"""Whether a loopback port is free, and which process holds it when it is not.

``iot-dr local up`` checks every fixed port it was given before starting anything, and each daemon checks its own
before it starts, so a port held by another program (or by a daemon an earlier crash left behind) fails at once with
the holder's name and PID instead of a daemon that never becomes ready.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import psutil

TCP, UDP = "tcp", "udp"
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class PortInUse(RuntimeError):
    """The port is taken; the message names the holder when this process may see it."""


@dataclass(frozen=True)
class Port:
    address: str
    port: int
    protocol: str = TCP

    def __str__(self) -> str:
        return f"{self.address}:{self.port}/{self.protocol}"


def _bindable(port: Port) -> bool:
    kind = socket.SOCK_STREAM if port.protocol == TCP else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if port.protocol == TCP:
            # A connection in TIME_WAIT does not stop a daemon from listening (they set SO_REUSEADDR); for UDP the
            # option would let the probe share a port with a server that set it too.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((port.address, port.port))
        except OSError:
            return False
    return True


def holder(port: Port) -> str:
    """``name (pid N)`` of the process bound to ``port``, or a phrase saying it cannot be seen."""
    for connection in psutil.net_connections(kind=port.protocol + "4"):
        address = connection.laddr
        if not address or address.port != port.port or address.ip not in {port.address, *_WILDCARDS}:
            continue
        if port.protocol == TCP and connection.status != psutil.CONN_LISTEN:
            continue
        if connection.pid is None:
            return "a process this user cannot see"
        try:
            name = psutil.Process(connection.pid).name()
        except psutil.Error:
            name = "a process that just exited"
        return f"{name} (pid {connection.pid})"
    return "an unknown process"


def require_free(ports: list[Port], hint: str = "") -> None:
    """Raise PortInUse for the first port of ``ports`` (port 0 means any, never taken) that cannot be bound."""
    for port in ports:
        if port.port and not _bindable(port):
            suffix = f"; {hint}" if hint else ""
            raise PortInUse(f"port {port} is in use by {holder(port)}{suffix}")
