"""iot-dr-pubsub.py: input validation, DNS lookups, the pinned tunnel, and plain publish/subscribe runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from failover_support import CNAME, PRIMARY_ADDRESS, PRIMARY_REGION, PRIMARY_TARGET, SECONDARY_REGION, ZONE, free_port

from iot_dr_cli.pubsub import EXIT_FAILURE, EXIT_USAGE, EndpointResolver, main, region_role
from iot_dr_cli.tunnel import PinnedTunnel
from iot_dr_local.dns_server import KnotDnsServer
from iot_dr_local.mqtt_broker import MosquittoBroker
from iot_dr_local.pki import LocalCA

REPO = Path(__file__).resolve().parents[2]
PUBSUB = REPO / "source/tools/iot-dr-pubsub.py"


@pytest.fixture
def device(local_ca: LocalCA) -> Any:
    return local_ca.issue_device("cli-device")


def run_device(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PUBSUB), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def summary_of(stdout: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return next(line["summary"] for line in lines if line.get("message") == "summary")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dr-mode"], "--dr-mode needs --use-cname or --use-custom-domain"),
        (["--use-cname", "--use-custom-domain"], "--use-cname and --use-custom-domain exclude each other"),
        (["--use-websocket"], "--use-websocket signs with AWS credentials: leave out --cert and --key"),
        (["--signing-region", "us-east-1"], "--signing-region needs --use-websocket"),
        (["--count", "-1"], "--count must be 0 or more"),
        (["--dns-server", "127.0.0.1"], "--dns-server: expected host:port, got '127.0.0.1'"),
        (["--topic", "dt/#"], "--topic must be a topic name without wildcards"),
        (["--root-ca", "/nonexistent/ca.pem"], "--root-ca: file not found: /nonexistent/ca.pem"),
        (["--port", "70000"], "--port must be between 1 and 65535"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(
    device: Any, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = ["--cert", str(device.cert_path), "--key", str(device.key_path)]
    code = main(["--endpoint", "iot.example.com", *credentials, *extra])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.strip() == f"iot-dr-pubsub.py: error: {message}"


def test_missing_certificate_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint", "e", "--cert", "/nonexistent/cert.pem", "--key", "/nonexistent/key"]) == EXIT_USAGE
    assert "--cert: file not found: /nonexistent/cert.pem" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("a1b2-ats.iot.us-east-1.amazonaws.com", ("primary", "us-east-1")),
        ("us-west-2.iot-dr.test", ("secondary", "us-west-2")),
        ("a1b2-ats.iot.eu-west-1.amazonaws.com", (None, None)),
    ],
)
def test_region_role_matches_a_label_of_the_endpoint(target: str, expected: tuple[str | None, str | None]) -> None:
    assert region_role(target, {"primary": "us-east-1", "secondary": "us-west-2"}) == expected


def test_resolver_reads_the_cname_with_its_ttl_and_the_region_txt_record(dns_server: KnotDnsServer) -> None:
    resolver = EndpointResolver((dns_server.address, dns_server.port))

    assert resolver.cname(CNAME) == (PRIMARY_TARGET, 1)
    assert resolver.regions(CNAME) == {"primary": PRIMARY_REGION, "secondary": SECONDARY_REGION}
    assert resolver.regions(f"nothing.{ZONE}") == {}
    assert resolver.address(PRIMARY_TARGET) == PRIMARY_ADDRESS


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socket.create_server((PRIMARY_ADDRESS, 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(1024))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield PRIMARY_ADDRESS, server.getsockname()[1]
    server.close()


def connect_through(tunnel: PinnedTunnel, authority: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", tunnel.port), timeout=5)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    return sock, sock.recv(1024)


def test_tunnel_relays_pinned_names_and_refuses_everything_else(echo_server: tuple[str, int]) -> None:
    address, port = echo_server
    tunnel = PinnedTunnel()
    try:
        tunnel.pin("broker.iot-dr.test.", address)
        refused, reply = connect_through(tunnel, f"other.iot-dr.test:{port}")
        refused.close()
        assert reply.startswith(b"HTTP/1.1 403")

        sock, reply = connect_through(tunnel, f"broker.iot-dr.test:{port}")
        assert reply.startswith(b"HTTP/1.1 200")
        sock.sendall(b"ping")
        assert sock.recv(1024) == b"ping"
        sock.close()

        unreachable, reply = connect_through(tunnel, f"broker.iot-dr.test:{free_port(address)}")
        unreachable.close()
        assert reply.startswith(b"HTTP/1.1 502")
    finally:
        tunnel.close()


def test_unresolvable_cname_exits_1_with_a_message(dns_server: KnotDnsServer, device: Any) -> None:
    result = run_device(
        "--endpoint",
        f"missing.{ZONE}",
        "--use-cname",
        "--dns-server",
        f"{dns_server.address}:{dns_server.port}",
        "--cert",
        str(device.cert_path),
        "--key",
        str(device.key_path),
    )

    assert result.returncode == EXIT_FAILURE
    assert f"iot-dr-pubsub.py: error: cannot resolve CNAME missing.{ZONE}" in result.stderr
    assert "Traceback" not in result.stderr


def test_publishes_and_receives_its_messages_on_a_plain_endpoint(
    start_broker: Callable[..., MosquittoBroker], local_ca: LocalCA, device: Any
) -> None:
    broker = start_broker("plain", PRIMARY_ADDRESS, free_port(PRIMARY_ADDRESS))

    result = run_device(
        "--endpoint",
        PRIMARY_ADDRESS,
        "--port",
        str(broker.endpoint.port),
        "--root-ca",
        str(local_ca.cert_path),
        "--cert",
        str(device.cert_path),
        "--key",
        str(device.key_path),
        "--count",
        "5",
        "--interval",
        "0",
        "--client-id",
        "cli-device",
    )

    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    assert (summary["published"], summary["acknowledged"], summary["received"]) == (5, 5, 5)


def test_a_broker_that_rejects_the_device_certificate_ends_the_run_with_exit_1(
    start_broker: Callable[..., MosquittoBroker], local_ca: LocalCA, work_dir: Path
) -> None:
    broker = start_broker("strict", PRIMARY_ADDRESS, free_port(PRIMARY_ADDRESS))
    stranger = LocalCA(work_dir / "stranger-ca").issue_device("stranger")

    result = run_device(
        "--endpoint",
        PRIMARY_ADDRESS,
        "--port",
        str(broker.endpoint.port),
        "--root-ca",
        str(local_ca.cert_path),
        "--cert",
        str(stranger.cert_path),
        "--key",
        str(stranger.key_path),
        "--count",
        "1",
    )

    assert result.returncode == EXIT_FAILURE
    assert f"iot-dr-pubsub.py: error: cannot connect to {PRIMARY_ADDRESS}:{broker.endpoint.port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_ends_the_run_with_exit_130_and_a_summary(
    start_broker: Callable[..., MosquittoBroker], local_ca: LocalCA, device: Any, work_dir: Path
) -> None:
    broker = start_broker("interrupted", PRIMARY_ADDRESS, free_port(PRIMARY_ADDRESS))
    log_path = work_dir / "interrupted-device.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PUBSUB),
                "--endpoint",
                PRIMARY_ADDRESS,
                "--port",
                str(broker.endpoint.port),
                "--root-ca",
                str(local_ca.cert_path),
                "--cert",
                str(device.cert_path),
                "--key",
                str(device.key_path),
                "--count",
                "0",
                "--interval",
                "0.05",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while '"SUBSCRIBED"' not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        process.terminate()
        assert process.wait(10) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert "Traceback" not in output
    summary = summary_of(output)
    assert summary["published"] >= summary["acknowledged"] > 0
    assert summary["received"] > 0
