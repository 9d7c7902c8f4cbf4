"""A TLS front per region that admits devices as AWS IoT does, including just-in-time registration.

mosquitto trusts one CA, the local cloud's; AWS IoT accepts any client certificate registered in the region and
registers certificates of CAs with auto-registration just in time. The gateway listens next to the region's broker
(same loopback address, its own port), completes the TLS handshake with any client certificate, reads the MQTT
CONNECT, asks ``jitr_emulation.admit`` and then either answers CONNACK "Not authorized" (MQTT 5: reason code 0x87
with the reason as the reason string; MQTT 3.1.1: return code 5) and closes, or connects to the broker with its own
local-CA certificate, forwards the CONNECT and relays bytes both ways. The device's client ID, topics and session are
its own; the broker sees the gateway's certificate. When the broker is down the device gets "Server unavailable".

AWS closes a refused connection without a CONNACK reason string; the reason string is this emulation's addition so
a device (or a notebook) can say why it was refused.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from OpenSSL import SSL

from iot_dr_local.jitr_emulation import Admission, admit
from iot_dr_local.mqtt_broker import BrokerEndpoint
from iot_dr_local.pki import IssuedCertificate, LocalCA

LOG = logging.getLogger(__name__)

CONNECT, CONNACK = 0x10, 0x20
MQTT5 = 5
# CONNACK codes: (MQTT 5 reason code, MQTT 3.1.1 return code)
NOT_AUTHORIZED = (0x87, 5)
SERVER_UNAVAILABLE = (0x88, 3)
_REASON_STRING = 0x1F
_MAX_CONNECT_BYTES = 1 << 16
HANDSHAKE_TIMEOUT_SECONDS = 10.0
GATEWAYS_FILE = "device-gateways.json"

T = TypeVar("T")
Admit = Callable[[str, list[x509.Certificate]], Admission]


class ProtocolError(Exception):
    """The client did not open with a well-formed MQTT CONNECT."""


@dataclass(frozen=True)
class GatewayEndpoint:
    region: str
    address: str
    port: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        digit, value = value % 128, value // 128
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def connack(protocol_level: int, codes: tuple[int, int], reason: str) -> bytes:
    """A CONNACK refusing the connection; MQTT 5 carries ``reason`` as the Reason String property."""
    if protocol_level < MQTT5:
        return bytes([CONNACK, 2, 0, codes[1]])
    text = reason.encode()[:1024]
    properties = bytes([_REASON_STRING]) + len(text).to_bytes(2, "big") + text
    body = bytes([0, codes[0]]) + _varint(len(properties)) + properties
    return bytes([CONNACK]) + _varint(len(body)) + body


def read_connect(receive: Callable[[int], bytes]) -> tuple[bytes, int]:
    """Read one CONNECT packet with ``receive(n)`` (returns up to n bytes, b"" at end of stream).

    Returns the packet's bytes and its protocol level (4 for MQTT 3.1.1, 5 for MQTT 5). Raises ``ProtocolError``.
    """

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = receive(count - len(data))
            if not chunk:
                raise ProtocolError("connection closed before the CONNECT was complete")
            data += chunk
        return data

    header = exactly(1)
    if header[0] & 0xF0 != CONNECT:
        raise ProtocolError("the first packet is not a CONNECT")
    length_bytes, length, shift = b"", 0, 0
    while True:
        byte = exactly(1)
        length_bytes += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
        if shift > 21:
            raise ProtocolError("malformed remaining length")
    if length > _MAX_CONNECT_BYTES or length < 7:
        raise ProtocolError(f"CONNECT of {length} bytes")
    body = exactly(length)
    if body[2:6] != b"MQTT":
        raise ProtocolError("not an MQTT 3.1.1 or 5 CONNECT")
    return header + length_bytes + body, body[6]


class DeviceGateway:
    """One region's gateway on ``address:port``, in front of ``broker``; threads, no process of its own.

    ``server`` is the certificate devices see (issued for the names they connect to); ``identity`` is the gateway's
    client certificate towards the broker.
    """

    def __init__(
        self,
        region: str,
        address: str,
        port: int,
        broker: BrokerEndpoint,
        server: IssuedCertificate,
        identity: IssuedCertificate,
        admit_device: Admit = admit,
    ) -> None:
        self.endpoint = GatewayEndpoint(region, address, port)
        self._broker = broker
        self._admit = admit_device
        self.admissions: list[Admission] = []
        self._context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self._context.use_certificate_file(str(server.cert_path))
        self._context.use_privatekey_file(str(server.key_path))
        # Any client certificate completes the handshake: admission is decided on the registry, as AWS IoT does.
        self._context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        self._upstream = ssl.create_default_context(cafile=str(broker.ca_path))
        self._upstream.load_cert_chain(str(identity.cert_path), str(identity.key_path))
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.create_server((self.endpoint.address, self.endpoint.port))
        listener.settimeout(0.2)
        self._listener = listener
        self._stopping.clear()
        thread = threading.Thread(target=self._accept_loop, name=f"gateway-{self.endpoint.region}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        # Non-blocking, so a silent client cannot hold the thread past the handshake deadline.
        client.setblocking(False)
        device = SSL.Connection(self._context, client)
        device.set_accept_state()
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_SECONDS
        try:
            _until_done(client, device.do_handshake, deadline)
            chain = _presented_chain(device)
            packet, level = read_connect(lambda count: _until_done(client, lambda: device.recv(count), deadline))
            admission = self._admit(self.endpoint.region, chain)
            with self._lock:
                self.admissions.append(admission)
            if not admission.allowed:
                _send_all(client, device, connack(level, NOT_AUTHORIZED, admission.reason))
                return
            try:
                broker = self._connect_broker()
            except OSError as err:
                LOG.warning("broker unavailable", extra={"region": self.endpoint.region, "error": str(err)})
                _send_all(client, device, connack(level, SERVER_UNAVAILABLE, f"{self.endpoint.region} is unavailable"))
                return
            with broker:
                broker.sendall(packet)
                _relay(client, device, broker, self._stopping)
        except (SSL.Error, OSError, ProtocolError, ValueError) as err:
            LOG.info("device connection closed", extra={"region": self.endpoint.region, "error": repr(err)})
        finally:
            _close(device, client)

    def _connect_broker(self) -> ssl.SSLSocket:
        raw = socket.create_connection((self._broker.address, self._broker.port), timeout=HANDSHAKE_TIMEOUT_SECONDS)
        try:
            broker = self._upstream.wrap_socket(raw, server_hostname=self._broker.address)
        except BaseException:
            raw.close()
            raise
        broker.settimeout(None)
        return broker


def _presented_chain(device: SSL.Connection) -> list[x509.Certificate]:
    """The client's certificate followed by the other certificates it sent (a server-side chain omits the leaf)."""
    leaf = device.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        raise ValueError("the device presented no certificate")
    others = device.get_peer_cert_chain(as_cryptography=True) or []
    return [leaf, *[cert for cert in others if cert != leaf]]


def _until_done(client: socket.socket, operation: Callable[[], T], deadline: float | None = None) -> T:
    """Run a pyOpenSSL operation on the non-blocking ``client`` socket, waiting while OpenSSL wants I/O.

    Raises ``TimeoutError`` after ``deadline`` (a ``time.monotonic()`` value; None waits without end).
    """
    while True:
        try:
            return operation()
        except SSL.WantReadError:
            wait = select.select([client], [], [], _remaining(deadline))
        except SSL.WantWriteError:
            wait = select.select([], [client], [], _remaining(deadline))
        if not any(wait) and deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("the device did not complete the TLS handshake and CONNECT in time")


def _remaining(deadline: float | None) -> float:
    return 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))


def _send_all(client: socket.socket, device: SSL.Connection, data: bytes) -> None:
    offset = 0
    while offset < len(data):
        send = functools.partial(device.send, data[offset:])
        offset += _until_done(client, send, time.monotonic() + HANDSHAKE_TIMEOUT_SECONDS)


def _relay(client: socket.socket, device: SSL.Connection, broker: ssl.SSLSocket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes or the gateway stops."""
    while not stopping.is_set():
        readable, _, _ = select.select([client, broker], [], [], 0.5)
        if device.pending():
            readable.append(client)
        if broker.pending():
            readable.append(broker)
        for source in set(readable):
            if source is client:
                try:
                    data = device.recv(65536)
                except SSL.WantReadError:
                    continue
                except (SSL.ZeroReturnError, SSL.SysCallError):
                    return
                if not data:
                    return
                broker.sendall(data)
            else:
                data = broker.recv(65536)
                if not data:
                    return
                _send_all(client, device, data)


def _close(device: SSL.Connection, client: socket.socket) -> None:
    with contextlib.suppress(SSL.Error, OSError):
        device.shutdown()
    client.close()


def write_endpoints(path: Path, gateways: list[DeviceGateway]) -> None:
    """``path`` lists each region's gateway (``{"<region>": {"address": ..., "port": ...}}``) for tools and users."""
    path.write_text(
        json.dumps({g.endpoint.region: {"address": g.endpoint.address, "port": g.endpoint.port} for g in gateways})
    )
    path.chmod(0o644)


def start_gateways(
    ca: LocalCA, brokers: dict[str, tuple[BrokerEndpoint, list[str]]], port: int, directory: Path
) -> dict[str, DeviceGateway]:
    """A started gateway per region on ``port`` of its broker's address, in front of that broker.

    ``brokers`` maps a region to its broker and the DNS names devices use for it. The gateways' endpoints are
    written to ``directory/device-gateways.json`` (see ``write_endpoints``).
    """
    gateways: dict[str, DeviceGateway] = {}
    try:
        for region, (endpoint, names) in brokers.items():
            gateway = DeviceGateway(
                region,
                endpoint.address,
                port,
                endpoint,
                ca.issue_server(f"gateway-{region}", names, [endpoint.address]),
                ca.issue_device(f"device-gateway-{region}"),
            )
            gateway.start()
            gateways[region] = gateway
    except BaseException:
        for gateway in gateways.values():
            gateway.stop()
        raise
    write_endpoints(directory / GATEWAYS_FILE, list(gateways.values()))
    return gateways
