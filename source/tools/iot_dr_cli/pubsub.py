"""iot-dr-pubsub: a sample device that follows the failover CNAME between regions (MQTT 5, mutual TLS).

With ``--use-cname`` the device resolves the CNAME ``--endpoint`` to the regional IoT endpoint it points at and
connects there. With ``--dr-mode`` it re-resolves the CNAME every ``--dns-interval`` seconds (default: the record's
TTL) and whenever the connection drops; when the target changes it logs ``REGION SWITCH detected: <old> -> <new>``,
connects to the new region after a random delay (so a fleet does not reconnect in lock-step), re-subscribes, and
keeps going. Failback is the same move in the other direction. The TXT record ``_<endpoint>`` holding
``{"primary": "<region>", "secondary": "<region>"}`` tells the device which role the region it is in plays.

Every QoS 1 message stays in the device's outbox until the broker acknowledges it (PUBACK): messages published while
disconnected, or in flight when the region switched, are sent again on the next connection. Delivery is therefore
at least once: nothing acknowledged is lost, a message may arrive twice.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import logging
import queue
import random
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import dns.exception
import dns.resolver
from awscrt import auth, http, io, mqtt5
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt5_client_builder

from iot_dr.core.logs import configure_logging
from iot_dr_cli.arguments import from_arguments
from iot_dr_cli.tunnel import PinnedTunnel

LOG = logging.getLogger("iot-dr-pubsub")

DNS_LIFETIME = 2.0
MIN_DNS_INTERVAL = 0.2
MAX_DNS_INTERVAL = 300.0
MAX_FAILURES_BEFORE_FIRST_CONNECT = 5
VERBOSITY = {level.name: level for level in io.LogLevel}

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad command-line input; the message is shown to the user as is."""


class ClientFailure(Exception):
    """The device cannot continue (endpoint not resolvable, certificate rejected, ...)."""


@dataclass(frozen=True)
class PubSubOptions:
    endpoint: str
    cert: Path | None
    key: Path | None
    root_ca: Path | None = None
    port: int = 8883
    client_id: str = field(default_factory=lambda: f"test-{uuid.uuid4()}")
    topic: str = "test/topic"
    message: str = "Hello World!"
    count: int = 10
    interval: float = 10.0
    use_cname: bool = False
    use_custom_domain: bool = False
    use_websocket: bool = False
    signing_region: str | None = None
    dr_mode: bool = False
    dns_server: tuple[str, int] | None = None
    dns_interval: float | None = None
    reconnect_jitter: float = 1.0
    verbosity: str = "NoLogs"


def _readable_file(flag: str, value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{flag}: file not found: {value}")
    try:
        path.read_bytes()
    except OSError as err:
        raise UsageError(f"{flag}: cannot read {value}: {err.strerror}") from err
    return path


def parse_dns_server(value: str | None) -> tuple[str, int] | None:
    """``--dns-server host:port`` as (IP address, port); None for None; UsageError when malformed."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--dns-server: expected host:port, got {value!r}")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UsageError(f"--dns-server: {host!r} is not an IP address (a resolver is named by its address)") from None
    return host.strip("[]"), int(port)


def _private_key_file(flag: str, value: str) -> Path:
    path = _readable_file(flag, value)
    if b"PRIVATE KEY-----" not in path.read_bytes():
        raise UsageError(f"{flag}: {value} holds no PEM private key")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iot-dr-pubsub.py",
        description="Publish and subscribe over MQTT 5 with mutual TLS, following a failover CNAME in --dr-mode.",
    )
    parser.add_argument(
        "--endpoint", required=True, help="IoT endpoint; the failover CNAME with --use-cname; or a custom domain"
    )
    parser.add_argument("--port", type=int, help="MQTT port (default 8883; 443 with --use-websocket)")
    parser.add_argument("--cert", help="device certificate (PEM); not with --use-websocket")
    parser.add_argument("--key", help="device private key (PEM); not with --use-websocket")
    parser.add_argument("--root-ca", help="CA that signed the broker certificate (default: system trust store)")
    parser.add_argument("--client-id", default=f"test-{uuid.uuid4()}", help="MQTT client id (default test-<uuid>)")
    parser.add_argument("--topic", default="test/topic", help="topic to publish and subscribe to")
    parser.add_argument("--message", default="Hello World!", help="message text; empty: only subscribe")
    parser.add_argument("--count", type=int, default=10, help="messages to publish (0: until interrupted)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between messages (default 10)")
    parser.add_argument("--use-cname", action="store_true", help="--endpoint is a CNAME to a regional endpoint")
    parser.add_argument(
        "--use-custom-domain",
        action="store_true",
        help="--endpoint is a custom domain (IoT domain configuration) whose CNAME points at a region: connect to "
        "the domain itself (TLS server name = the domain) and watch the CNAME",
    )
    parser.add_argument(
        "--use-websocket", action="store_true", help="MQTT over WebSocket signed with SigV4 (AWS credentials)"
    )
    parser.add_argument("--signing-region", help="SigV4 region for --use-websocket (default: from the endpoint)")
    parser.add_argument(
        "--dr-mode",
        action="store_true",
        help="follow the CNAME when it changes (needs --use-cname or --use-custom-domain)",
    )
    parser.add_argument("--dns-server", help="resolve with this DNS server (host:port) instead of the system's")
    parser.add_argument("--dns-interval", type=float, help="seconds between CNAME checks (default: record TTL)")
    parser.add_argument(
        "--reconnect-jitter", type=float, default=1.0, help="max random delay before joining a new region (s)"
    )
    parser.add_argument("--verbosity", choices=sorted(VERBOSITY), default="NoLogs", help="awscrt log level")
    return parser


def parse_options(argv: Sequence[str]) -> PubSubOptions:
    """Parse and validate; raises UsageError with a message fit for the user."""
    args = build_parser().parse_args(argv)
    if args.use_cname and args.use_custom_domain:
        raise UsageError("--use-cname and --use-custom-domain exclude each other")
    if args.dr_mode and not (args.use_cname or args.use_custom_domain):
        raise UsageError("--dr-mode needs --use-cname or --use-custom-domain")
    if args.use_websocket and (args.cert or args.key):
        raise UsageError("--use-websocket signs with AWS credentials: leave out --cert and --key")
    if not args.use_websocket and not (args.cert and args.key):
        raise UsageError("--cert and --key are required (or --use-websocket)")
    if args.signing_region and not args.use_websocket:
        raise UsageError("--signing-region needs --use-websocket")
    if args.port is None:
        args.port = 443 if args.use_websocket else 8883
    if args.count < 0:
        raise UsageError("--count must be 0 or more")
    if args.interval < 0:
        raise UsageError("--interval must be 0 or more")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535")
    if args.dns_interval is not None and args.dns_interval < MIN_DNS_INTERVAL:
        raise UsageError(f"--dns-interval must be at least {MIN_DNS_INTERVAL}")
    if args.reconnect_jitter < 0:
        raise UsageError("--reconnect-jitter must be 0 or more")
    if not args.topic or any(c in args.topic for c in "#+"):
        raise UsageError("--topic must be a topic name without wildcards")
    return from_arguments(
        PubSubOptions,
        args,
        endpoint=args.endpoint.rstrip("."),
        cert=_readable_file("--cert", args.cert) if args.cert else None,
        key=_private_key_file("--key", args.key) if args.key else None,
        root_ca=_readable_file("--root-ca", args.root_ca) if args.root_ca else None,
        dns_server=parse_dns_server(args.dns_server),
    )


class EndpointResolver:
    """CNAME, address and region-role lookups through one dnspython resolver (never cached)."""

    def __init__(self, dns_server: tuple[str, int] | None) -> None:
        if dns_server is None:
            self._resolver = dns.resolver.Resolver(configure=True)
        else:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [dns_server[0]]
            self._resolver.port = dns_server[1]
        self._resolver.lifetime = DNS_LIFETIME
        self._resolver.timeout = DNS_LIFETIME
        self._resolver.cache = None

    def cname(self, name: str) -> tuple[str, int]:
        """Target of the CNAME ``name`` and the record's TTL."""
        answer = self._resolver.resolve(name, "CNAME")
        return answer[0].target.to_text().rstrip("."), answer.rrset.ttl if answer.rrset else 0

    def address(self, name: str) -> str:
        return str(self._resolver.resolve(name, "A")[0].address)

    def regions(self, name: str) -> dict[str, str]:
        """The ``_<name>`` TXT document ``{"primary": ..., "secondary": ...}``; empty when absent or malformed."""
        try:
            answer = self._resolver.resolve(f"_{name}", "TXT")
        except dns.exception.DNSException as err:
            LOG.warning("no region TXT record", extra={"record": f"_{name}", "error": str(err)})
            return {}
        try:
            text = b"".join(answer[0].strings).decode()
        except UnicodeDecodeError:
            LOG.warning("region TXT record is not UTF-8", extra={"record": f"_{name}"})
            return {}
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            LOG.warning("region TXT record is not JSON", extra={"record": f"_{name}", "value": text})
            return {}
        if not isinstance(document, dict):
            return {}
        return {role: str(document[role]) for role in ("primary", "secondary") if role in document}


def region_role(target: str, regions: dict[str, str]) -> tuple[str | None, str | None]:
    """(role, region) of an endpoint: a region matches the whole name or one of its labels."""
    labels = set(target.lower().split("."))
    for role, region in regions.items():
        if region.lower() == target.lower() or region.lower() in labels:
            return role, region
    return None, None


class _Connection:
    """One MQTT 5 client to one endpoint; its callbacks only post events for the main loop."""

    def __init__(
        self,
        generation: int,
        target: str,
        options: PubSubOptions,
        events: queue.Queue[tuple[Any, ...]],
        tunnel: PinnedTunnel | None,
    ) -> None:
        self.generation = generation
        self.target = target
        self.session = 0
        self.ready = False
        self.connected_once = False
        self.started = False
        post = events.put
        proxy = None
        if tunnel is not None:
            proxy = http.HttpProxyOptions(
                "127.0.0.1", tunnel.port, connection_type=http.HttpProxyConnectionType.Tunneling
            )
        common: dict[str, Any] = {
            "endpoint": target,
            "port": options.port,
            "ca_filepath": str(options.root_ca) if options.root_ca else None,
            "client_id": options.client_id,
        }
        try:
            if options.use_websocket:
                # SigV4-signed WebSocket handshake with the default credential chain, as AWS IoT's MQTT over WSS needs
                # (https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html#mqtt-ws).
                build = mqtt5_client_builder.websockets_with_default_aws_signing
                common |= {
                    "region": options.signing_region or _region_of(target),
                    "credentials_provider": auth.AwsCredentialsProvider.new_default_chain(),
                    "websocket_proxy_options": proxy,
                }
            else:
                build = mqtt5_client_builder.mtls_from_path
                common |= {
                    "cert_filepath": str(options.cert),
                    "pri_key_filepath": str(options.key),
                    "http_proxy_options": proxy,
                }
            self.client = build(
                **common,
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                extended_validation_and_flow_control_options=mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
                retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
                min_reconnect_delay_ms=250,
                max_reconnect_delay_ms=5000,
                keep_alive_interval_sec=30,
                on_publish_received=lambda data: post(("message", generation, bytes(data.publish_packet.payload))),
                on_lifecycle_connection_success=lambda _data: post(("connected", generation)),
                on_lifecycle_connection_failure=lambda data: post(("connect_failed", generation, data.exception)),
                on_lifecycle_disconnection=lambda data: post(("disconnected", generation, data.exception)),
            )
        except AwsCrtError as err:
            raise ClientFailure(f"cannot use the certificate, key or CA: {err.name}") from err

    def start(self) -> None:
        self.started = True
        self.client.start()

    def stop(self) -> None:
        self.ready = False
        if self.started:
            self.client.stop()


@dataclass
class RunSummary:
    published: int = 0
    acknowledged: int = 0
    received: int = 0
    rejected: int = 0
    region_switches: int = 0
    acknowledged_ids: list[int] = field(default_factory=list)
    received_ids: list[int] = field(default_factory=list)


class DrPubSub:
    """The device's main loop: one thread owns all state; awscrt callbacks only enqueue events."""

    def __init__(self, options: PubSubOptions, resolver: EndpointResolver) -> None:
        self.options = options
        self.resolver = resolver
        self.summary = RunSummary()
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._outbox: dict[int, bytes] = {}
        # sequence -> publish attempt; a message is in the outbox until acknowledged, in flight while an attempt runs
        self._inflight: dict[int, int] = {}
        self._attempts = itertools.count(1)
        self._received: set[int] = set()
        self._regions: dict[str, str] = {}
        self._tunnel = PinnedTunnel() if options.dns_server else None
        self._generation = 0
        self._conn: _Connection | None = None
        self._connect_at = 0.0
        self._dns_interval = options.dns_interval or 0.0
        self._next_dns_check = float("inf")
        self._failures_before_connect = 0
        self._region_target = options.endpoint

    def _initial_target(self) -> str:
        """The name to connect to; ``_region_target`` becomes the regional endpoint the CNAME points at."""
        self._region_target = self.options.endpoint
        if not (self.options.use_cname or self.options.use_custom_domain):
            return self.options.endpoint
        try:
            target, ttl = self.resolver.cname(self.options.endpoint)
        except dns.exception.DNSException as err:
            raise ClientFailure(f"cannot resolve CNAME {self.options.endpoint}: {err}") from err
        if self.options.dns_interval is None:
            self._dns_interval = min(max(float(ttl), 1.0), MAX_DNS_INTERVAL)
        self._regions = self.resolver.regions(self.options.endpoint)
        self._region_target = target
        # A custom domain is connected to by its own name (the TLS server name the domain configuration serves);
        # its CNAME only tells which region is behind it.
        return self.options.endpoint if self.options.use_custom_domain else target

    def _describe(self, target: str) -> dict[str, Any]:
        regional = self._region_target if self.options.use_custom_domain else target
        role, region = region_role(regional, self._regions)
        described = {"endpoint": target, "role": role, "region": region}
        if regional != target:
            described["regional_endpoint"] = regional
        return described

    def _open(self, target: str, address: str | None, delay: float) -> None:
        if self._tunnel is not None and address is not None:
            self._tunnel.pin(target, address)
        self._generation += 1
        self._conn = _Connection(self._generation, target, self.options, self._events, self._tunnel)
        self._connect_at = time.monotonic() + delay

    def run(self) -> RunSummary:
        target = self._initial_target()
        LOG.info("starting", extra={**self._describe(target), "client_id": self.options.client_id})
        try:
            address = self._address_for(target)
        except dns.exception.DNSException as err:
            raise ClientFailure(f"cannot resolve {target}: {err}") from err
        self._open(target, address, 0.0)
        now = time.monotonic()
        next_publish = now
        if self.options.dr_mode:
            self._next_dns_check = now + self._dns_interval
        finished_at: float | None = None
        try:
            while True:
                wake = [now + 0.25, self._next_dns_check]
                if self._wants_more_messages():
                    wake.append(next_publish)
                if self._conn is not None and not self._conn.started:
                    wake.append(self._connect_at)
                self._wait_for_event(min(wake))
                now = time.monotonic()
                conn = self._conn
                if conn is not None and not conn.started and now >= self._connect_at:
                    conn.start()
                if self._wants_more_messages() and now >= next_publish:
                    self._enqueue()
                    next_publish = now + self.options.interval
                if self.options.dr_mode and now >= self._next_dns_check:
                    self._check_cname()
                    self._next_dns_check = time.monotonic() + self._dns_interval
                self._flush()
                if finished_at is None and self._all_acknowledged():
                    finished_at = now
                if finished_at is not None and (len(self._received) >= self.options.count or now - finished_at > 2.0):
                    break
        finally:
            if self._conn is not None:
                self._conn.stop()
            if self._tunnel is not None:
                self._tunnel.close()
            self.summary.received = len(self._received)
            self.summary.received_ids = sorted(self._received)
            self.summary.acknowledged_ids.sort()
        return self.summary

    def _address_for(self, target: str) -> str | None:
        """The address the tunnel pins ``target`` to; None when awscrt resolves names itself."""
        return self.resolver.address(target) if self._tunnel is not None else None

    def _wants_more_messages(self) -> bool:
        return bool(self.options.message) and (self.options.count == 0 or self.summary.published < self.options.count)

    def _all_acknowledged(self) -> bool:
        return (
            bool(self.options.message)
            and self.options.count > 0
            and self.summary.published == self.options.count
            and not self._outbox
        )

    def _enqueue(self) -> None:
        self.summary.published += 1
        sequence = self.summary.published
        self._outbox[sequence] = json.dumps(
            {
                "message": self.options.message,
                "client_id": self.options.client_id,
                "count": sequence,
                "datetime": datetime.now(UTC).isoformat(),
            }
        ).encode()

    def _flush(self) -> None:
        conn = self._conn
        if conn is None or not conn.ready:
            return
        for sequence, payload in self._outbox.items():
            if sequence in self._inflight:
                continue
            attempt = next(self._attempts)
            self._inflight[sequence] = attempt
            future = conn.client.publish(
                mqtt5.PublishPacket(topic=self.options.topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
            )
            future.add_done_callback(
                lambda f, s=sequence, a=attempt, g=conn.generation: self._events.put(("puback", g, s, a, f))
            )

    def _wait_for_event(self, until: float) -> None:
        timeout = max(0.0, until - time.monotonic())
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind, generation = event[0], event[1]
        if kind == "puback":
            self._on_puback(event[2], event[3], event[4])
        elif kind == "message":
            self._on_message(event[2])
        conn = self._conn
        if conn is None or generation != conn.generation:
            return  # lifecycle news from a connection we already left
        if kind == "connected":
            self._on_connected(conn)
        elif kind == "subscribed":
            if event[2] == conn.session:
                self._on_subscribed(conn, event[3])
        elif kind == "connect_failed":
            self._on_connect_failed(conn, event[2])
        elif kind == "disconnected":
            conn.ready = False
            # Whatever was in flight is sent again once the next session is subscribed.
            self._inflight.clear()
            LOG.warning(
                "DISCONNECTED", extra={**self._describe(conn.target), "error": _error_name(event[2]), "at": time.time()}
            )
            if self.options.dr_mode:
                self._next_dns_check = time.monotonic()

    def _on_connected(self, conn: _Connection) -> None:
        conn.connected_once = True
        conn.session += 1
        self._failures_before_connect = 0
        LOG.info("CONNECTED", extra={**self._describe(conn.target), "at": time.time()})
        session = conn.session
        future = conn.client.subscribe(
            mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(self.options.topic, mqtt5.QoS.AT_LEAST_ONCE)])
        )
        future.add_done_callback(lambda f: self._events.put(("subscribed", conn.generation, session, f)))

    def _on_subscribed(self, conn: _Connection, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            LOG.warning("subscribe failed", extra={"error": _error_name(error)})
            return
        codes = future.result().reason_codes
        if any(code >= 128 for code in codes):
            raise ClientFailure(f"subscription to {self.options.topic} rejected: {[c.name for c in codes]}")
        conn.ready = True
        LOG.info("SUBSCRIBED", extra={"topic": self.options.topic, "at": time.time()})

    def _on_connect_failed(self, conn: _Connection, error: BaseException | None) -> None:
        LOG.warning("connection attempt failed", extra={**self._describe(conn.target), "error": self._failure(error)})
        # Outside DR mode nothing will move the device elsewhere: repeated failures before any success mean a wrong
        # endpoint, certificate or CA. In DR mode the CNAME may still move, so the device keeps trying.
        if not self.options.dr_mode and not conn.connected_once:
            self._failures_before_connect += 1
            if self._failures_before_connect >= MAX_FAILURES_BEFORE_FIRST_CONNECT:
                raise ClientFailure(f"cannot connect to {conn.target}:{self.options.port}: {self._failure(error)}")
        if self.options.dr_mode:
            self._next_dns_check = min(self._next_dns_check, time.monotonic() + self._dns_interval)

    def _on_puback(self, sequence: int, attempt: int, future: Future[Any]) -> None:
        error = future.exception()
        if error is None:
            puback = future.result().puback
            if puback is not None and puback.reason_code >= 128:
                LOG.error("message rejected", extra={"count": sequence, "reason": puback.reason_code.name})
                self.summary.rejected += 1
                self._outbox.pop(sequence, None)
                self._inflight.pop(sequence, None)
                return
            if self._outbox.pop(sequence, None) is not None:
                self.summary.acknowledged += 1
                self.summary.acknowledged_ids.append(sequence)
                LOG.debug("message acknowledged", extra={"count": sequence})
            self._inflight.pop(sequence, None)
        elif self._inflight.get(sequence) == attempt:
            # Not acknowledged (client stopped, or the broker went away): it stays in the outbox and is resent.
            del self._inflight[sequence]

    def _on_message(self, payload: bytes) -> None:
        try:
            document = json.loads(payload)
        except json.JSONDecodeError:
            LOG.info("message received", extra={"payload": payload.decode(errors="replace")})
            return
        if isinstance(document, dict) and document.get("client_id") == self.options.client_id:
            self._received.add(int(document.get("count", 0)))
        LOG.debug("message received", extra={"payload": document})

    def _failure(self, error: BaseException | None) -> str:
        """Why a connection attempt failed. With ``--dns-server`` the connection runs through our own loopback tunnel,
        which awscrt sees as an HTTP proxy: its proxy errors, and the tunnel closing the socket before the MQTT
        handshake, mean the broker was unreachable, not a proxy problem."""
        name = _error_name(error)
        if self._tunnel is not None and ("PROXY" in name or name == "AWS_IO_SOCKET_CLOSED"):
            return f"endpoint unreachable (connection refused or timed out; awscrt: {name})"
        return name

    def _check_cname(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            target, _ttl = self.resolver.cname(self.options.endpoint)
        except dns.exception.DNSException as err:
            # An unanswered lookup says nothing about which region is healthy: stay where we are.
            LOG.warning("CNAME lookup failed", extra={"endpoint": self.options.endpoint, "error": str(err)})
            return
        if target == self._region_target:
            return
        connect_to = self.options.endpoint if self.options.use_custom_domain else target
        try:
            address = self._address_for(connect_to)
        except dns.exception.DNSException as err:
            LOG.warning("new endpoint not resolvable yet", extra={"endpoint": target, "error": str(err)})
            return
        self._regions = self.resolver.regions(self.options.endpoint) or self._regions
        old = self._describe(conn.target)
        previous, self._region_target = self._region_target, target
        new = self._describe(connect_to)
        LOG.warning(
            f"REGION SWITCH detected: {previous} -> {target}",
            extra={"from": old, "to": new, "at": time.time()},
        )
        self.summary.region_switches += 1
        conn.stop()
        # Unacknowledged publishes of the old connection are resent on the new one.
        self._inflight.clear()
        self._open(connect_to, address, random.uniform(0, self.options.reconnect_jitter))


def _region_of(endpoint: str) -> str:
    """The region label of ``<id>-ats.iot.<region>.amazonaws.com``; us-east-1 when the name has none."""
    labels = endpoint.split(".")
    return labels[2] if len(labels) > 3 and labels[1] == "iot" else "us-east-1"


def _error_name(error: BaseException | None) -> str:
    if error is None:
        return "none"
    return getattr(error, "name", None) or type(error).__name__


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"iot-dr-pubsub.py: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if options.verbosity != "NoLogs":
        io.init_logging(VERBOSITY[options.verbosity], "stderr")
    signal.signal(signal.SIGTERM, _terminate)
    client = DrPubSub(options, EndpointResolver(options.dns_server))
    code = EXIT_OK
    try:
        summary = client.run()
    except ClientFailure as err:
        print(f"iot-dr-pubsub.py: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        summary = client.summary
        code = EXIT_INTERRUPTED
    if summary.rejected:
        code = code or EXIT_FAILURE
    LOG.info("summary", extra={"summary": summary.__dict__})
    return code
