"""A loopback HTTP CONNECT tunnel that sends a broker name to an address we resolved ourselves.

awscrt resolves host names with the system resolver and verifies the broker certificate against the name it
connected to. A device that follows a failover CNAME through its own resolver (``--dns-server``) needs both: the TCP
connection must go to the address its resolver returned, and TLS must still verify the broker's name. awscrt's MQTT 5
client supports tunnelling proxies, so it is given this one: it sends ``CONNECT <name>:<port>``, the tunnel connects
to the address pinned for that name, and TLS runs end to end between awscrt and the broker, checked for ``<name>``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

LOG = logging.getLogger(__name__)

_MAX_REQUEST = 8192


class PinnedTunnel:
    """Listens on 127.0.0.1; accepts CONNECT only for names pinned with ``pin(name, address)``."""

    def __init__(self, connect_timeout: float = 4.0) -> None:
        self._pins: dict[str, str] = {}
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="pinned-tunnel", daemon=True)
        self._thread.start()

    def pin(self, name: str, address: str) -> None:
        with self._lock:
            self._pins[name.rstrip(".").lower()] = address

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [*self._open, self._listener]
        for sock in sockets:
            _shutdown(sock)
            sock.close()
        self._thread.join(2)

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._open.add(sock)
            return True

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._track(client):
                client.close()
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            target = self._read_connect(client)
            if target is None:
                client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            try:
                upstream = socket.create_connection(target, timeout=self._connect_timeout)
            except OSError as err:
                LOG.debug("tunnel upstream unreachable", extra={"address": target[0], "error": str(err)})
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            upstream.settimeout(None)
            if not self._track(upstream):
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            reverse = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            reverse.start()
            _pump(client, upstream)
            reverse.join()
        except OSError as err:
            LOG.debug("tunnel connection ended", extra={"error": str(err)})
        finally:
            if upstream is not None:
                self._untrack(upstream)
            self._untrack(client)

    def _read_connect(self, client: socket.socket) -> tuple[str, int] | None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(1024)
            if not chunk or len(request) > _MAX_REQUEST:
                return None
            request += chunk
        parts = request.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or parts[0] != "CONNECT":
            return None
        host, _, port = parts[1].rpartition(":")
        with self._lock:
            address = self._pins.get(host.lower())
        if address is None or not port.isdigit():
            LOG.warning("tunnel refused unpinned name", extra={"host": host})
            return None
        return address, int(port)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    # A reset or close() on either side ends the relay; both sides are then shut so the peer notices at once.
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    _shutdown(sink)
    _shutdown(source)


def _shutdown(sock: socket.socket) -> None:
    # The socket may already be closed or never have connected; either way there is nothing left to shut.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
