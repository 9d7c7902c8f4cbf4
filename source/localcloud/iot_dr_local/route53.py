"""Route 53 health checks and failover records, evaluated for real against the local DNS server.

moto stores health checks and failover records but never probes or evaluates them. Here each health check probes on
its request interval by calling the real health-checker handler (in a worker process, see ``HandlerProbe``) with an
API-Gateway-proxy request built from the check's resource path, as Route 53's checkers call API Gateway. A check
starts healthy (as in Route 53), becomes unhealthy after ``failure_threshold`` consecutive failures and healthy again
after as many consecutive successes. A probe fails when the status is not 2xx/3xx or arrives later than Route 53's two
seconds. Whenever the healthy answer of a failover record changes, the CNAME in the DNS server is replaced, and every
step is timed.

One emulated checker stands in for Route 53's fleet of checkers, so the "18 % of checkers" rule reduces to this one
checker's verdict.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from iot_dr_local.dns_server import DnsUpdateError
from iot_dr_local.worker_process import WorkerProcess, WorkerSpec

LOG = logging.getLogger(__name__)

ROUTE53_USER_AGENT = "Amazon-Route53-Health-Check-Service (ref iot-dr-local; report http://amzn.to/1vsZADi)"
RESPONSE_TIMEOUT = 2.0

Probe = Callable[[dict[str, Any]], Mapping[str, Any]]
"""An API Gateway REST proxy integration: request event in, proxy response out."""


class CnameUpdater(Protocol):
    def set_cname(self, name: str, target: str, ttl: int) -> None: ...


@dataclass(frozen=True)
class HealthCheckConfig:
    """The parts of a Route 53 ``HealthCheckConfig`` that decide the verdict; intervals may be shortened locally."""

    health_check_id: str
    resource_path: str
    request_interval: float = 30.0
    failure_threshold: int = 3
    fqdn: str = "localhost"
    headers: Mapping[str, str] = field(default_factory=dict)
    response_timeout: float = RESPONSE_TIMEOUT
    # Route 53 reports the opposite of what the probes find (UpdateHealthCheck's Inverted).
    inverted: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.failure_threshold <= 10:
            raise ValueError("failure_threshold must be between 1 and 10, as in Route 53")
        if self.request_interval <= 0:
            raise ValueError("request_interval must be positive")


@dataclass(frozen=True)
class FailoverRecord:
    """A PRIMARY/SECONDARY failover record pair for one CNAME name."""

    name: str
    primary_target: str
    secondary_target: str
    primary_health_check_id: str
    secondary_health_check_id: str | None = None
    ttl: int = 60


@dataclass(frozen=True)
class ProbeResult:
    at: float
    status: int
    seconds: float
    healthy: bool


@dataclass(frozen=True)
class StatusChange:
    """A health check changing verdict: when its streak of opposite results began and when the threshold was hit."""

    health_check_id: str
    healthy: bool
    streak_started_at: float
    decided_at: float


@dataclass(frozen=True)
class RecordSwitch:
    """The failover record's answer moving, with the timings of detection and of the DNS update."""

    record: str
    from_target: str
    to_target: str
    cause: StatusChange
    dns_updated_at: float

    @property
    def detection_seconds(self) -> float:
        return self.cause.decided_at - self.cause.streak_started_at

    @property
    def dns_seconds(self) -> float:
        return self.dns_updated_at - self.cause.decided_at


def proxy_event(config: HealthCheckConfig, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """The REST API proxy event API Gateway would send for Route 53's GET on ``config.resource_path``."""
    parts = urlsplit(config.resource_path if config.resource_path.startswith("/") else "/" + config.resource_path)
    multi_query = {key: values for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    segments = parts.path.strip("/").split("/", 1)
    stage, resource = (segments[0], "/" + segments[1]) if len(segments) == 2 else ("$default", parts.path)
    headers = {"Host": config.fqdn, "User-Agent": ROUTE53_USER_AGENT, **config.headers}
    now = time.time()
    return {
        "resource": resource,
        "path": resource,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": {key: values[-1] for key, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "GET",
            "path": parts.path,
            "stage": stage,
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": ROUTE53_USER_AGENT},
        },
        "body": None,
        "isBase64Encoded": False,
    }


# The health-checker function's Timeout in its template.
HANDLER_TIMEOUT = 5.0


class ProbeError(Exception):
    """The health-check target failed (a function error, timeout or crash): API Gateway answers 502."""


class HandlerProbe:
    """Calls a Lambda handler in an execution environment of its own (``worker_process``), as Lambda would.

    The handler's MQTT round trip runs native code (awscrt); in a worker process a fault there fails this probe
    and the next probe starts a fresh environment, while the process running the emulator stays up.
    """

    def __init__(
        self, task_root: Path, handler: str, environment: Mapping[str, str], timeout: float = HANDLER_TIMEOUT
    ) -> None:
        name = environment.get("AWS_LAMBDA_FUNCTION_NAME", "health-checker")
        self._spec = WorkerSpec(
            task_root=task_root,
            opt_root=None,
            handler=handler,
            environment=dict(environment),
            function={"name": name, "arn": name, "version": "$LATEST", "memory_size": 128},
        )
        self._timeout = timeout
        self._lock = threading.Lock()
        self._worker: WorkerProcess | None = None
        self._closed = False

    def start(self) -> None:
        """Start the environment now, so the first probe is not a cold start."""
        with self._lock:
            self._ensure_worker()

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        with self._lock:
            worker = self._ensure_worker()
            result = worker.invoke(event, str(uuid.uuid4()), self._timeout)
            if not worker.alive:
                self._worker = None
        if result.errored:
            error = json.loads(result.payload)
            raise ProbeError(f"{error['errorType']}: {error['errorMessage']}")
        response: Mapping[str, Any] = json.loads(result.payload)
        return response

    def _ensure_worker(self) -> WorkerProcess:
        if self._closed:
            raise ProbeError("the probe is closed")
        if self._worker is None or not self._worker.alive:
            worker = WorkerProcess(self._spec)
            failure = worker.start()
            if failure is not None:
                raise ProbeError(json.loads(failure.payload)["errorMessage"])
            self._worker = worker
        return self._worker

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._worker is not None:
                self._worker.stop()
                self._worker = None


Refresh = Callable[[HealthCheckConfig], HealthCheckConfig]


class _HealthCheck:
    def __init__(
        self, config: HealthCheckConfig, probe: Probe, refresh: Refresh | None, stopping: threading.Event
    ) -> None:
        self.config = config
        self.probe = probe
        self.refresh = refresh
        self.stopping = stopping
        self.healthy = True  # Route 53 treats a new health check as healthy until it has data
        self.streak = 0
        self.streak_started_at = 0.0
        self.results: list[ProbeResult] = []

    def run_probe(self) -> ProbeResult:
        if self.refresh is not None:
            try:
                self.config = self.refresh(self.config)
            except Exception as err:  # the stored settings are unreadable for now: probe with the last ones
                LOG.warning(
                    "health check settings not refreshed",
                    extra={"id": self.config.health_check_id, "error": f"{type(err).__name__}: {err}"},
                )
        started = time.time()
        try:
            status = int(self.probe(proxy_event(self.config))["statusCode"])
        except Exception:  # a failing Lambda is a 502 from API Gateway: a failed probe, never a crashed checker
            # While shutting down the target's process is being ended: its failure is expected, not an error.
            if not self.stopping.is_set():
                LOG.exception("health-check target failed", extra={"health_check_id": self.config.health_check_id})
            status = 502
        seconds = time.time() - started
        healthy = (200 <= status < 400 and seconds <= self.config.response_timeout) != self.config.inverted
        return ProbeResult(started, status, seconds, healthy)

    def record(self, result: ProbeResult) -> StatusChange | None:
        """Count the result into the streak; a full streak against the current verdict flips it."""
        self.results.append(result)
        if result.healthy == self.healthy:
            self.streak = 0
            return None
        if self.streak == 0:
            self.streak_started_at = result.at
        self.streak += 1
        if self.streak < self.config.failure_threshold:
            return None
        self.healthy = result.healthy
        self.streak = 0
        return StatusChange(self.config.health_check_id, self.healthy, self.streak_started_at, time.time())


class Route53Emulator:
    """Runs health checks on their intervals and keeps failover CNAMEs in the DNS server pointing at healthy targets."""

    def __init__(self, dns: CnameUpdater) -> None:
        self._dns = dns
        self._checks: dict[str, _HealthCheck] = {}
        self._records: list[FailoverRecord] = []
        self._answers: dict[str, str] = {}
        self._last_change: StatusChange | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.status_changes: list[StatusChange] = []
        self.switches: list[RecordSwitch] = []

    def add_health_check(self, config: HealthCheckConfig, probe: Probe, refresh: Refresh | None = None) -> None:
        """``refresh`` gives the settings to probe with before each probe, from the current ones: edits made to the
        stored health check (UpdateHealthCheck) take effect at the next probe, as in Route 53."""
        self._checks[config.health_check_id] = _HealthCheck(config, probe, refresh, self._stop)

    def add_failover_record(self, record: FailoverRecord) -> None:
        """Register a record; its current answer is whatever the failover rules give now (primary at first)."""
        for check_id in (record.primary_health_check_id, record.secondary_health_check_id):
            if check_id is not None and check_id not in self._checks:
                raise ValueError(f"unknown health check {check_id}")
        with self._lock:
            self._records.append(record)
            self._answers[record.name] = self._answer(record)

    def healthy(self, health_check_id: str) -> bool:
        with self._lock:
            return self._checks[health_check_id].healthy

    def answer(self, record_name: str) -> str:
        with self._lock:
            return self._answers[record_name]

    def probe_results(self, health_check_id: str) -> list[ProbeResult]:
        with self._lock:
            return list(self._checks[health_check_id].results)

    def last_result(self, health_check_id: str) -> ProbeResult | None:
        """The latest probe of ``health_check_id``; None before its first probe or when it is not emulated here."""
        with self._lock:
            check = self._checks.get(health_check_id)
            return check.results[-1] if check is not None and check.results else None

    def _answer(self, record: FailoverRecord) -> str:
        primary_ok = self._checks[record.primary_health_check_id].healthy
        secondary_id = record.secondary_health_check_id
        secondary_ok = secondary_id is None or self._checks[secondary_id].healthy
        # When both are unhealthy Route 53 answers as if both were healthy: the primary.
        if primary_ok or not secondary_ok:
            return record.primary_target
        return record.secondary_target

    def probe_once(self, health_check_id: str) -> ProbeResult:
        """Run one probe now and apply its consequences (used by the interval loop and by step-wise tests)."""
        check = self._checks[health_check_id]
        result = check.run_probe()
        if self._stop.is_set():  # a probe that overlapped the shutdown decides nothing
            return result
        with self._lock:
            change = check.record(result)
            if change is not None:
                self._last_change = change
                self.status_changes.append(change)
                LOG.info(
                    "health check status changed",
                    extra={"health_check_id": health_check_id, "healthy": change.healthy},
                )
            if self._last_change is not None:
                for record in self._records:
                    self._apply(record, self._last_change)
        return result

    def _apply(self, record: FailoverRecord, change: StatusChange) -> None:
        """Bring the DNS answer in line with the health checks; a failed update is retried after the next probe."""
        wanted = self._answer(record)
        current = self._answers[record.name]
        if wanted == current:
            return
        try:
            self._dns.set_cname(record.name, wanted, record.ttl)
        except DnsUpdateError as err:
            LOG.warning("failover record update failed", extra={"record": record.name, "error": str(err)})
            return
        switch = RecordSwitch(record.name, current, wanted, change, time.time())
        self._answers[record.name] = wanted
        self.switches.append(switch)
        LOG.info(
            "failover record switched",
            extra={
                "record": record.name,
                "from": current,
                "to": wanted,
                "detection_seconds": round(switch.detection_seconds, 3),
                "dns_seconds": round(switch.dns_seconds, 4),
            },
        )

    def start(self) -> None:
        self._stop.clear()
        for check_id, check in self._checks.items():
            thread = threading.Thread(
                target=self._loop, args=(check_id, check.config.request_interval), name=f"r53-{check_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, check_id: str, interval: float) -> None:
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += interval
            self.probe_once(check_id)

    def halt(self) -> None:
        """Stop probing at once, without waiting for probes in flight: they decide nothing and their failures (the
        processes they reach are being ended) are not reported, since shutting down is not an error."""
        self._stop.set()

    def stop(self) -> None:
        self.halt()
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()


def failover_records_from_route53(route53: Any, hosted_zone_id: str) -> list[FailoverRecord]:
    """Pair the PRIMARY and SECONDARY CNAME failover records stored in a (moto) hosted zone."""
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    paginator = route53.get_paginator("list_resource_record_sets")
    for page in paginator.paginate(HostedZoneId=hosted_zone_id):
        for record in page["ResourceRecordSets"]:
            if record["Type"] == "CNAME" and record.get("Failover") in ("PRIMARY", "SECONDARY"):
                pairs.setdefault(record["Name"], {})[record["Failover"]] = record
    records = []
    for name, pair in sorted(pairs.items()):
        if "PRIMARY" not in pair or "SECONDARY" not in pair:
            raise ValueError(f"failover record {name} needs both PRIMARY and SECONDARY")
        primary, secondary = pair["PRIMARY"], pair["SECONDARY"]
        if "HealthCheckId" not in primary:
            raise ValueError(f"PRIMARY failover record {name} has no health check")
        records.append(
            FailoverRecord(
                name=name,
                primary_target=primary["ResourceRecords"][0]["Value"],
                secondary_target=secondary["ResourceRecords"][0]["Value"],
                primary_health_check_id=primary["HealthCheckId"],
                secondary_health_check_id=secondary.get("HealthCheckId"),
                ttl=int(primary.get("TTL", 60)),
            )
        )
    return records


def health_check_from_route53(
    route53: Any, health_check_id: str, request_interval: float | None = None
) -> HealthCheckConfig:
    """A health check's settings as stored in (moto) Route 53; ``request_interval`` shortens it for local drills."""
    config = route53.get_health_check(HealthCheckId=health_check_id)["HealthCheck"]["HealthCheckConfig"]
    return HealthCheckConfig(
        health_check_id=health_check_id,
        resource_path=config.get("ResourcePath", "/"),
        request_interval=request_interval or float(config.get("RequestInterval", 30)),
        failure_threshold=int(config.get("FailureThreshold", 3)),
        fqdn=config.get("FullyQualifiedDomainName", "localhost"),
        inverted=bool(config.get("Inverted", False)),
    )


def edits_from_route53(route53: Any) -> Refresh:
    """A ``Refresh`` that takes the edits an operator can make to a health check in place (its resource path, whether
    it is inverted) from (moto) Route 53, keeping the locally shortened interval and threshold."""

    def refresh(config: HealthCheckConfig) -> HealthCheckConfig:
        stored = health_check_from_route53(route53, config.health_check_id, config.request_interval)
        return replace(config, resource_path=stored.resource_path, inverted=stored.inverted)

    return refresh
