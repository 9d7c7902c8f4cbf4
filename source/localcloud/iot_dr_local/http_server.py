"""moto's threaded server with persistent HTTP/1.1 connections, as AWS's endpoints keep them.

werkzeug's development server answers every request with ``Connection: close`` because Python's ``http.server`` does
not drain a request body the application left unread before reading the next request line. So every AWS call made to
the local cloud opened a TCP connection and a server thread of its own, on a machine where the local cloud and its
callers share one process and its GIL. Here the body is read in full before the application sees it (from a
``BytesIO``), so the connection can serve the next request; a chunked body (whose end only the application finds) or
a request that waits for ``100 Continue`` still closes it. A connection idle for ``IDLE_TIMEOUT`` seconds is closed
by the server; botocore opens a new one when it finds a pooled connection closed.
"""

from __future__ import annotations

import io
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

IDLE_TIMEOUT = 60.0


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler whose connections outlive one request (see the module docstring)."""

    # StreamRequestHandler applies it to the socket: a blocked read of the next request line ends after it.
    timeout = IDLE_TIMEOUT
    # The status line and headers, then the body, are separate writes: on a connection that stays open, Nagle's
    # algorithm would hold the body back until the client's delayed acknowledgement of the headers.
    disable_nagle_algorithm = True
    _keep_alive = False

    def run_wsgi(self) -> None:
        expects_continue = self.headers.get("Expect", "").lower().strip() == "100-continue"
        if expects_continue or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            super().run_wsgi()  # werkzeug's way: the body is read as it comes, then the connection is closed
            return
        connection = self.rfile
        # werkzeug reads the request body from rfile and, after answering, drains rfile of whatever is left: both
        # see only this request's body, and the next request stays in the connection.
        self.rfile = io.BytesIO(connection.read(int(self.headers.get("Content-Length") or 0)))
        self._keep_alive = True
        try:
            super().run_wsgi()
        finally:
            self.rfile, self._keep_alive = connection, False

    def send_header(self, keyword: str, value: str) -> None:
        # A client that asked to close (http.server's parse_request sets close_connection) is told it is closed.
        if (
            self._keep_alive
            and not self.close_connection
            and (keyword.lower(), value.lower()) == ("connection", "close")
        ):
            return
        super().send_header(keyword, value)

    def log_error(self, format: str, *args: Any) -> None:
        # http.server logs the end of a connection that stayed idle for IDLE_TIMEOUT as an error: it is routine here.
        if not format.startswith("Request timed out"):
            super().log_error(format, *args)


class KeepAliveMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` serving with ``KeepAliveRequestHandler``."""

    def _server_entry(self) -> None:
        # moto's own entry with the request handler replaced.
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
