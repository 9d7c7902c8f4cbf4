"""The local cloud's moto server keeps a connection open from one request to the next, as AWS endpoints do."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from iot_dr_local.http_server import KeepAliveMotoServer

STS_CALL = "Action=GetCallerIdentity&Version=2011-06-15"
STS_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, "
    "SignedHeaders=host, Signature=0",
}


@pytest.fixture
def connection() -> Iterator[http.client.HTTPConnection]:
    server = KeepAliveMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = http.client.HTTPConnection(host, port, timeout=30)
    yield client
    client.close()
    server.stop()


def test_requests_with_bodies_follow_each_other_on_one_connection(connection: http.client.HTTPConnection) -> None:
    sockets = []
    for _ in range(3):
        connection.request("POST", "/", body=STS_CALL, headers=STS_HEADERS)
        response = connection.getresponse()
        assert response.status == 200
        assert b"<Account>" in response.read()
        assert response.getheader("Connection") != "close"
        # http.client drops its socket after a response that closes the connection.
        sockets.append(connection.sock)
    assert sockets[0] is not None
    assert sockets == [sockets[0]] * 3


def test_a_client_that_asks_to_close_gets_the_connection_closed(connection: http.client.HTTPConnection) -> None:
    connection.request("POST", "/", body=STS_CALL, headers={**STS_HEADERS, "Connection": "close"})
    response = connection.getresponse()
    assert response.status == 200
    response.read()
    assert connection.sock is None
