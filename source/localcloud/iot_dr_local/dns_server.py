"""An authoritative DNS server (knot) for the failover CNAME, changed at runtime with RFC 2136 updates.

Route 53 answers a failover record with whichever target is healthy; locally the Route 53 emulation rewrites the
CNAME in a real DNS server instead, and devices resolve it with an ordinary resolver, exactly as they would in AWS.
Updates are signed with TSIG (HMAC-SHA256) so only the holder of the key can move the fleet.
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update

from iot_dr_local.ports import TCP, UDP, Port
from iot_dr_local.processes import Daemon, require_binary

LOG = logging.getLogger(__name__)

TSIG_KEY_NAME = "iot-dr-update"


class DnsUpdateError(RuntimeError):
    """The server refused or did not answer an update."""


@dataclass(frozen=True)
class DnsRecord:
    """One RRset in presentation format, ``name`` relative to the zone (``@`` for the apex) or absolute."""

    name: str
    rdtype: str
    values: tuple[str, ...]
    ttl: int = 60


def txt_value(text: str) -> str:
    """``text`` as one quoted, escaped TXT string (JSON documents contain quotes)."""
    rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [text.encode()])
    return rdata.to_text()


class DnsUpdater:
    """Sends TSIG-signed RFC 2136 updates for one zone to one server."""

    def __init__(
        self, address: str, port: int, zone: str, key_name: str, key_secret: str, timeout: float = 2.0
    ) -> None:
        self.address = address
        self.port = port
        self.zone = dns.name.from_text(zone)
        self._keyring = dns.tsigkeyring.from_text({key_name: (dns.tsig.HMAC_SHA256, key_secret)})
        self._timeout = timeout

    def replace(self, name: str, rdtype: str, values: list[str], ttl: int) -> None:
        """Atomically replace the RRset ``name``/``rdtype`` with ``values``."""
        update = dns.update.UpdateMessage(self.zone, keyring=self._keyring, keyalgorithm=dns.tsig.HMAC_SHA256)
        update.replace(self._owner(name), ttl, rdtype, *values)
        try:
            response = dns.query.tcp(update, self.address, port=self.port, timeout=self._timeout)
        except (dns.exception.DNSException, OSError) as err:
            raise DnsUpdateError(f"update of {name} {rdtype} failed: {err}") from err
        if response.rcode() != dns.rcode.NOERROR:
            raise DnsUpdateError(f"update of {name} {rdtype} refused: {dns.rcode.to_text(response.rcode())}")
        LOG.info("dns record replaced", extra={"record": name, "rdtype": rdtype, "values": values, "ttl": ttl})

    def _owner(self, name: str) -> dns.name.Name:
        """``name`` inside the zone: absolute when it ends with the zone's name (with or without the final dot)."""
        absolute = dns.name.from_text(name)
        if absolute.is_subdomain(self.zone):
            return absolute
        return dns.name.from_text(name, origin=self.zone)

    def set_cname(self, name: str, target: str, ttl: int) -> None:
        self.replace(name, "CNAME", [_absolute(target)], ttl)


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def resolver_for(address: str, port: int, lifetime: float = 2.0) -> dns.resolver.Resolver:
    """A resolver that asks only ``address:port`` and never caches, so every lookup sees the current record."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [address]
    resolver.port = port
    resolver.lifetime = lifetime
    resolver.timeout = lifetime
    resolver.cache = None
    return resolver


class KnotDnsServer(Daemon):
    """A knotd process serving ``zone`` from ``records`` on ``address:port`` and accepting TSIG-signed updates."""

    def __init__(
        self,
        zone: str,
        directory: Path,
        records: list[DnsRecord],
        address: str = "127.0.0.1",
        port: int = 15353,
        soa_ttl: int = 1,
    ) -> None:
        binary = require_binary("knotd", "knot")
        self.zone = zone.rstrip(".")
        self.address = address
        self.port = port
        self.directory = directory
        self._key_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        storage = directory / "db"
        # knot answers every update with SERVFAIL when the database directory does not exist.
        storage.mkdir(parents=True, exist_ok=True)
        zone_file = directory / f"{self.zone}.zone"
        zone_file.write_text(self._zone_text(records, soa_ttl))
        conf = directory / "knot.conf"
        conf.write_text(
            f"""server:
    rundir: "{directory}"
    listen: {address}@{port}
key:
  - id: {TSIG_KEY_NAME}
    algorithm: hmac-sha256
    secret: {self._key_secret}
acl:
  - id: signed-update
    key: {TSIG_KEY_NAME}
    action: update
database:
    storage: "{storage}"
template:
  - id: default
    storage: "{directory}"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
zone:
  - domain: {self.zone}
    file: {zone_file.name}
    acl: [signed-update]
log:
  - target: stdout
    any: info
"""
        )
        conf.chmod(0o600)
        ports = [Port(address, port, TCP), Port(address, port, UDP)]
        super().__init__("knotd", [binary, "-c", str(conf)], directory / "knotd.log", self._answers, ports)

    def _zone_text(self, records: list[DnsRecord], soa_ttl: int) -> str:
        lines = [
            f"$ORIGIN {self.zone}.",
            f"$TTL {soa_ttl}",
            f"@ {soa_ttl} IN SOA ns.{self.zone}. hostmaster.{self.zone}. 1 60 60 600 {soa_ttl}",
            f"@ {soa_ttl} IN NS ns.{self.zone}.",
            f"ns {soa_ttl} IN A {self.address}",
        ]
        for record in records:
            lines += [f"{record.name} {record.ttl} IN {record.rdtype} {value}" for value in record.values]
        return "\n".join(lines) + "\n"

    def _answers(self) -> bool:
        query = dns.message.make_query(self.zone + ".", dns.rdatatype.SOA)
        try:
            dns.query.udp(query, self.address, port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def updater(self, timeout: float = 2.0) -> DnsUpdater:
        return DnsUpdater(self.address, self.port, self.zone, TSIG_KEY_NAME, self._key_secret, timeout)

    def resolver(self, lifetime: float = 2.0) -> dns.resolver.Resolver:
        return resolver_for(self.address, self.port, lifetime)
