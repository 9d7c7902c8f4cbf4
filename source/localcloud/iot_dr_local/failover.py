"""Local failover for the local cloud: a broker per region, an authoritative DNS server and Route 53 emulation.

Each region's AWS IoT data endpoint becomes a mosquitto broker on its own loopback address (127.0.0.2 for the
primary, 127.0.0.3 for the secondary, same port) that requires mutual TLS with certificates from a local CA. knot
serves the failover CNAME, which points at the primary's broker name, the brokers' names and the region TXT record
``_<cname>``. The Route 53 emulation probes each region by calling the real health-checker handler with an
API-Gateway proxy request carrying the secret, and moves the CNAME when the failure threshold is reached. The
checker's identity (thing, certificate from the local CA, policy) is registered in each region's registry; moto's
own certificates are signed by no CA a broker could trust.
"""

from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from iot_dr.core.aws import error_code
from iot_dr.health import checker_identity
from iot_dr_local.device_gateway import DeviceGateway, start_gateways
from iot_dr_local.dns_server import DnsRecord, KnotDnsServer
from iot_dr_local.failover_plan import ClientFactory, FailoverPlan, FailoverSettings, RegionPlan, failover_plan
from iot_dr_local.mqtt_broker import PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS, MosquittoBroker
from iot_dr_local.pki import IssuedCertificate, LocalCA
from iot_dr_local.processes import DaemonError, find_binary
from iot_dr_local.route53 import HandlerProbe, RecordSwitch, Route53Emulator, edits_from_route53

LOG = logging.getLogger(__name__)

HEALTH_CHECKER_ROOT = Path(__file__).resolve().parents[2] / "lambda" / "iot-dr-r53-health-checker"
HEALTH_CHECKER_HANDLER = "health_checker.handler"
# (binary, Debian package)
REQUIRED_BINARIES = (("mosquitto", "mosquitto"), ("knotd", "knot"))
BROKER_ADDRESSES = (PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS)


def missing_packages() -> list[str]:
    """The Debian packages to install before the failover services can run."""
    return [package for binary, package in REQUIRED_BINARIES if find_binary(binary) is None]


def _ephemeral_ports() -> range:
    """The ports the kernel gives to sockets that bind no port (outgoing connections, DNS queries)."""
    try:
        low, high = (int(value) for value in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port(addresses: Sequence[str], udp: bool = False) -> int:
    """A TCP port (and UDP port, with ``udp``) free on every one of ``addresses``, below the ephemeral range: a port
    from that range can be taken by any client's outgoing socket (a DNS query's, say) before the daemon binds it."""
    ephemeral = _ephemeral_ports()
    for _ in range(50):
        if ephemeral.start > 20000:
            port = random.randrange(10000, ephemeral.start)
        else:
            with socket.socket() as probe:
                probe.bind((addresses[0], 0))
                port = int(probe.getsockname()[1])
        kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
        try:
            for address in addresses:
                for kind in kinds:
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind((address, port))
        except OSError:
            continue
        return port
    raise DaemonError(f"no port is free on all of {', '.join(addresses)}")


@dataclass(frozen=True)
class DeviceCertificate:
    """A device's certificate and key from the local CA, registered (ACTIVE) in both regions."""

    name: str
    cert_path: Path
    key_path: Path
    certificate_id: str


class FailoverServices:
    """Starts and stops one local failover set-up, with its files in ``directory``.

    mosquitto drops root privileges, so ``directory`` is made readable by other users and its parents must be
    searchable by them (``tempfile.mkdtemp()`` under /tmp is).
    """

    def __init__(
        self,
        primary_region: str,
        secondary_region: str,
        client: ClientFactory,
        directory: Path,
        settings: FailoverSettings,
    ) -> None:
        self.primary_region = primary_region
        self.secondary_region = secondary_region
        self.directory = directory
        self.settings = settings
        self._client_factory = client
        self._clients: dict[tuple[str, str], Any] = {}
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        self.ca = LocalCA(directory / "ca")
        self.brokers: dict[str, MosquittoBroker] = {}
        # Just-in-time registration and certificates of any registered CA (see device_gateway).
        self.gateways: dict[str, DeviceGateway] = {}
        self.probes: dict[str, HandlerProbe] = {}
        self.dns: KnotDnsServer | None = None
        self.emulator: Route53Emulator | None = None
        self._plan: FailoverPlan | None = None
        self._reported = 0
        self.running = False

    def _client(self, service: str, region: str) -> Any:
        """Clients are reused: creating one costs more than the calls made with it."""
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._client_factory(service, region)
        return self._clients[key]

    @property
    def plan(self) -> FailoverPlan:
        if self._plan is None:
            raise RuntimeError("the failover services have not been started")
        return self._plan

    def start(self) -> None:
        missing = missing_packages()
        if missing:
            raise DaemonError(
                f"install {' and '.join(missing)}: apt-get install --no-install-recommends {' '.join(missing)}"
            )
        self._plan = failover_plan(self._client, self.primary_region, self.secondary_region, self.settings)
        mqtt_port = self.settings.mqtt_port or free_port(BROKER_ADDRESSES)
        dns_port = self.settings.dns_port or free_port([self.settings.dns_address], udp=True)
        self.running = True
        try:
            for region_plan, address in zip(self._plan.regions, BROKER_ADDRESSES, strict=True):
                broker = MosquittoBroker(
                    region_plan.region,
                    address,
                    mqtt_port,
                    self.directory / f"broker-{region_plan.region}",
                    self.ca,
                    [region_plan.broker_name],
                )
                self.brokers[region_plan.region] = broker
                broker.start()
            self.gateways = start_gateways(
                self.ca,
                {p.region: (self.brokers[p.region].endpoint, [p.broker_name]) for p in self._plan.regions},
                free_port(BROKER_ADDRESSES),
                self.directory,
            )
            self.dns = KnotDnsServer(
                self._plan.zone, self.directory / "dns", self._records(), self.settings.dns_address, dns_port
            )
            self.dns.start()
            self._start_route53(self._plan, self.dns)
        except BaseException:
            self.stop()
            raise
        LOG.info("failover services started", extra={"plan": self._plan.source, "record": self._plan.record.name})

    def _records(self) -> list[DnsRecord]:
        plan = self.plan
        records = [
            DnsRecord(region_plan.broker_name, "A", (self.brokers[region_plan.region].endpoint.address,))
            for region_plan in plan.regions
        ]
        records.append(DnsRecord(plan.record.name, "CNAME", (plan.record.primary_target,), plan.record.ttl))
        records.append(DnsRecord(plan.txt_name, "TXT", (plan.region_txt,), plan.record.ttl))
        return records

    def _start_route53(self, plan: FailoverPlan, dns: KnotDnsServer) -> None:
        emulator = Route53Emulator(dns.updater())
        self.emulator = emulator
        for region_plan in plan.regions:
            identity = self._create_checker_identity(region_plan.region, region_plan.checker_thing)
            if region_plan.health_check is None:
                continue
            probe = HandlerProbe(
                HEALTH_CHECKER_ROOT, HEALTH_CHECKER_HANDLER, self._checker_environment(region_plan, identity)
            )
            probe.start()
            self.probes[region_plan.region] = probe
            # Health checks the stacks created live in Route 53: an edit there (the guide's failover test) applies.
            refresh = (
                edits_from_route53(self._client("route53", plan.primary.region)) if plan.source == "route53" else None
            )
            emulator.add_health_check(region_plan.health_check, probe, refresh)
        emulator.add_failover_record(plan.record)
        emulator.start()

    def _create_checker_identity(self, region: str, thing: str) -> IssuedCertificate:
        """The checker's thing and policy in ``region`` (as the health-checker stack creates them, or the stack's own)
        with a certificate from the local CA attached."""
        issued = self.ca.issue_device(thing)
        iot = self._client("iot", region)
        certificate_arn = iot.register_certificate_without_ca(certificatePem=issued.cert_pem, status="ACTIVE")[
            "certificateArn"
        ]
        _, partition, _, _, account_id, _ = certificate_arn.split(":", 5)
        policy = checker_identity.policy_name(thing)
        iot.create_thing(thingName=thing)
        try:
            iot.create_policy(
                policyName=policy,
                policyDocument=json.dumps(checker_identity.policy_document(partition, region, account_id, thing)),
            )
        except ClientError as err:
            if error_code(err) != "ResourceAlreadyExistsException":
                raise
        iot.attach_thing_principal(thingName=thing, principal=certificate_arn)
        iot.attach_policy(policyName=policy, target=certificate_arn)
        return issued

    def _checker_environment(self, region_plan: RegionPlan, identity: IssuedCertificate) -> dict[str, str]:
        """The function's environment, with the region's broker as its IoT endpoint and local-CA credentials."""
        endpoint = self.brokers[region_plan.region].endpoint
        return {
            "IOT_ENDPOINT": endpoint.address,
            "IOT_PORT": str(endpoint.port),
            "CA_PATH": str(endpoint.ca_path),
            "CERT_PATH": str(identity.cert_path),
            "KEY_PATH": str(identity.key_path),
            "HEALTH_CHECK_SECRET": region_plan.secret,
            # Route 53 can only present the secret in the query string.
            "ALLOW_QUERY_SECRET": "true",
            "CLIENT_ID": identity.name,
            # The handler configures logging on every call; an INFO line per probe would drown the CLI's output.
            "LOG_LEVEL": "WARNING",
            # What Lambda sets in every execution environment.
            "AWS_REGION": region_plan.region,
            "AWS_DEFAULT_REGION": region_plan.region,
            "AWS_LAMBDA_FUNCTION_NAME": f"iot-dr-r53-health-checker-{region_plan.region}",
        }

    def register_device_certificate(self, name: str) -> DeviceCertificate:
        """Issue ``name`` a certificate from the local CA and register it in both regions' registries.

        The secondary comes first: registering in the primary also replicates the certificate to the secondary.
        """
        issued = self.ca.issue_device(name)
        certificate_id = ""
        for region in (self.secondary_region, self.primary_region):
            iot = self._client("iot", region)
            certificate_id = iot.register_certificate_without_ca(certificatePem=issued.cert_pem, status="ACTIVE")[
                "certificateId"
            ]
        return DeviceCertificate(name, issued.cert_path, issued.key_path, certificate_id)

    def broker_command(self, region: str) -> tuple[list[str], Path]:
        """The command line that runs ``region``'s broker and the log it writes to, to start it again elsewhere."""
        broker = self.brokers[region]
        return list(broker.argv), broker.log_path

    def new_switches(self) -> list[RecordSwitch]:
        """Failover-record switches since the previous call."""
        if self.emulator is None:
            return []
        switches = self.emulator.switches[self._reported :]
        self._reported += len(switches)
        return switches

    def stop(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
        for gateway in self.gateways.values():
            gateway.stop()
        for probe in self.probes.values():
            probe.close()
        for broker in self.brokers.values():
            broker.stop()
        if self.dns is not None:
            self.dns.stop()
        self.running = False
