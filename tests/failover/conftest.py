"""Real local services for the failover tests: a CA, mosquitto brokers per region, and a knot DNS server.

Every process a fixture starts is stopped by its PID at teardown, also when the test failed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from failover_support import (
    PRIMARY_ADDRESS,
    PRIMARY_REGION,
    PRIMARY_TARGET,
    SECONDARY_ADDRESS,
    SECONDARY_REGION,
    SECONDARY_TARGET,
    ZONE,
    free_dns_port,
    free_port,
)

from iot_dr_local.dns_server import DnsRecord, KnotDnsServer, txt_value
from iot_dr_local.mqtt_broker import MosquittoBroker
from iot_dr_local.pki import LocalCA
from iot_dr_local.processes import find_binary


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent is 0700, and mosquitto drops root privileges before reading its files.
    directory = Path(tempfile.mkdtemp(prefix="iot-dr-failover-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def local_ca(work_dir: Path) -> LocalCA:
    return LocalCA(work_dir / "ca")


@pytest.fixture
def start_broker(work_dir: Path, local_ca: LocalCA) -> Iterator[Callable[..., MosquittoBroker]]:
    """Factory: ``start_broker(name, address, port, server_names)`` starts a broker stopped at teardown."""
    if find_binary("mosquitto") is None:
        pytest.skip("mosquitto is not installed (apt-get install --no-install-recommends mosquitto)")
    started: list[MosquittoBroker] = []

    def start(name: str, address: str, port: int, server_names: list[str] | None = None) -> MosquittoBroker:
        broker = MosquittoBroker(
            name,
            address,
            port,
            Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work_dir)),
            local_ca,
            server_names or [],
        )
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def regional_brokers(
    start_broker: Callable[..., MosquittoBroker],
) -> tuple[MosquittoBroker, MosquittoBroker]:
    """Primary on 127.0.0.2 and secondary on 127.0.0.3, same port, certificates valid for the regional names."""
    port = free_port(PRIMARY_ADDRESS, SECONDARY_ADDRESS)
    return (
        start_broker("primary", PRIMARY_ADDRESS, port, [PRIMARY_TARGET]),
        start_broker("secondary", SECONDARY_ADDRESS, port, [SECONDARY_TARGET]),
    )


@pytest.fixture
def dns_server(work_dir: Path) -> Iterator[KnotDnsServer]:
    """knot serving the failover CNAME (pointing at the primary, TTL 1 s) and the region TXT record."""
    if find_binary("knotd") is None:
        pytest.skip("knot is not installed (apt-get install --no-install-recommends knot)")
    regions = json.dumps({"primary": PRIMARY_REGION, "secondary": SECONDARY_REGION})
    records = [
        DnsRecord(PRIMARY_REGION, "A", (PRIMARY_ADDRESS,)),
        DnsRecord(SECONDARY_REGION, "A", (SECONDARY_ADDRESS,)),
        DnsRecord("iot", "CNAME", (PRIMARY_TARGET + ".",), ttl=1),
        DnsRecord("_iot", "TXT", (txt_value(regions),), ttl=1),
    ]
    server = KnotDnsServer(
        ZONE, Path(tempfile.mkdtemp(prefix="knot-", dir=work_dir)), records, port=free_dns_port("127.0.0.1")
    )
    server.start()
    yield server
    server.stop()
