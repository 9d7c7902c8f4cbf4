"""Health of one region's MQTT data plane, as Route 53 sees it through API Gateway.

Every request makes a fresh MQTT 5 round trip with a clean start: connect, subscribe to a topic nobody else uses,
publish ``count`` QoS 1 messages and receive them all back. Nothing about health is carried between invocations, so a
warm Lambda container can never report "healthy" without the broker having just proven it. Route 53 counts an HTTPS
check as failed unless the status arrives within two seconds of connecting, so the whole probe runs under one budget
and answers 503 when the budget runs out instead of letting Route 53 time out. The budget covers the whole answer:
the credentials come from a cache refreshed every few minutes through a Secrets Manager client with sub-second
timeouts and one attempt, and ``TOTAL_TIMEOUT_MS`` is capped below Route 53's two seconds
(https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html).
Malformed requests are answered 400, requests without the right secret (or with none configured) 403.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from awscrt import io, mqtt5
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt5_client_builder

from iot_dr.core import metrics

if TYPE_CHECKING:
    from types_boto3_secretsmanager import SecretsManagerClient

LOG = logging.getLogger(__name__)

SECRET_HEADER = "x-health-check-secret"
SECRET_QUERY_PARAMETER = "hashme"
# Route 53 fails a check whose status has not arrived two seconds after connecting; keep a margin for the network.
MAX_TOTAL_TIMEOUT = 1.9
CREDENTIALS_REFRESH_SECONDS = 300.0
# One attempt: the standard mode's retry backoff alone can take seconds, and a failed refresh keeps the cached
# credentials anyway, so a hung Secrets Manager endpoint costs at most connect + read = 0.8 s.
SECRETS_CLIENT_SETTINGS: dict[str, Any] = {
    "connect_timeout": 0.3,
    "read_timeout": 0.5,
    "retries": {"mode": "standard", "max_attempts": 1},
}
# Part of the budget kept for stopping the client, so the broker sees a clean DISCONNECT before we answer.
_STOP_ALLOWANCE = 0.2


class ProbeFailed(Exception):
    """The round trip failed at a named stage."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class HealthCheckSettings:
    """Everything the checker needs; built once per invocation from the environment or directly by tests."""

    endpoint: str
    client_id: str
    region: str
    port: int = 8883
    ca_path: str | None = None
    credentials_secret_arn: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    shared_secret: str | None = field(default=None, repr=False)
    count: int = 2
    connect_timeout: float = 1.0
    total_timeout: float = 1.5
    allow_query_secret: bool = False

    def __post_init__(self) -> None:
        if not self.endpoint or not self.client_id:
            raise ValueError("IOT_ENDPOINT and CLIENT_ID are required")
        if not self.credentials_secret_arn and not (self.cert_path and self.key_path and self.shared_secret):
            raise ValueError("set CREDENTIALS_SECRET_ARN, or CERT_PATH, KEY_PATH and HEALTH_CHECK_SECRET")
        if self.count < 1:
            raise ValueError("MESSAGE_COUNT must be at least 1")
        if self.total_timeout > MAX_TOTAL_TIMEOUT:
            raise ValueError(f"TOTAL_TIMEOUT_MS must be at most {MAX_TOTAL_TIMEOUT * 1000:.0f}: Route 53 waits 2 s")
        if not 0 < self.connect_timeout < self.total_timeout - _STOP_ALLOWANCE:
            raise ValueError(f"need 0 < CONNECT_TIMEOUT_MS < TOTAL_TIMEOUT_MS - {_STOP_ALLOWANCE * 1000:.0f}")

    @property
    def topic_prefix(self) -> str:
        """The MQTT topic namespace of this checker, ``iot-dr/health-check/<client id>``."""
        # The checker's IoT policy allows exactly this namespace.
        return f"iot-dr/health-check/{self.client_id}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HealthCheckSettings:
        """Settings from the function's environment; raises ValueError naming a missing or invalid setting."""
        env = os.environ if environ is None else environ
        return cls(
            endpoint=env.get("IOT_ENDPOINT", ""),
            client_id=env.get("CLIENT_ID", ""),
            region=env.get("AWS_REGION", ""),
            port=_number(env, "IOT_PORT", "8883"),
            ca_path=env.get("CA_PATH") or None,
            credentials_secret_arn=env.get("CREDENTIALS_SECRET_ARN") or None,
            cert_path=env.get("CERT_PATH") or None,
            key_path=env.get("KEY_PATH") or None,
            shared_secret=env.get("HEALTH_CHECK_SECRET") or None,
            count=_number(env, "MESSAGE_COUNT", "2"),
            connect_timeout=_number(env, "CONNECT_TIMEOUT_MS", "1000") / 1000,
            total_timeout=_number(env, "TOTAL_TIMEOUT_MS", "1500") / 1000,
            allow_query_secret=env.get("ALLOW_QUERY_SECRET", "false").lower() == "true",
        )


def _number(env: Mapping[str, str], name: str, default: str) -> int:
    try:
        return int(env.get(name) or default)
    except ValueError as err:
        raise ValueError(f"{name} must be a whole number, got {env.get(name)!r}") from err


class NoSecretConfigured(Exception):
    """The credentials hold no health-check secret, so no caller can be admitted."""


@dataclass(frozen=True)
class CheckerCredentials:
    """The checker thing's certificate and key, and the secret callers must present."""

    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    shared_secret: str = field(repr=False)


def credentials_from_secret(secrets_client: SecretsManagerClient, secret_arn: str) -> CheckerCredentials:
    """Read the JSON secret the deploy-time custom resource wrote (certificatePem, privateKey, healthCheckSecret).

    Raises NoSecretConfigured when the value is not that JSON object yet (for example CloudFormation's placeholder).
    """
    try:
        value = json.loads(secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"])
        return CheckerCredentials(
            value["certificatePem"].encode(), value["privateKey"].encode(), str(value["healthCheckSecret"])
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise NoSecretConfigured(f"secret {secret_arn} holds no checker credentials") from err


class CredentialsCache:
    """Credentials are configuration, not health state: kept for ``refresh_seconds`` so a probe costs no Secrets
    Manager call, and kept beyond that while a refresh fails, so a slow Secrets Manager cannot fail the check."""

    def __init__(
        self, refresh_seconds: float = CREDENTIALS_REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, CheckerCredentials]] = {}

    def get(self, key: str, load: Callable[[], CheckerCredentials]) -> CheckerCredentials:
        """The cached credentials under ``key``, or ``load()``'s result when older than the refresh interval (seconds).

        When ``load`` fails and credentials are cached, the cached ones are returned (and the failure logged);
        otherwise its exception, and always ``NoSecretConfigured``, propagates."""
        with self._lock:
            entry = self._entries.get(key)
        if entry and self._clock() - entry[0] < self._refresh_seconds:
            return entry[1]
        try:
            credentials = load()
        except NoSecretConfigured:
            raise
        except Exception:
            if entry is None:
                raise
            LOG.warning("credentials refresh failed; using the cached credentials", exc_info=True)
            return entry[1]
        with self._lock:
            self._entries[key] = (self._clock(), credentials)
        return credentials


_CREDENTIALS = CredentialsCache()


@functools.cache
def _secrets_config() -> Any:
    """One Config object for the process: ``iot_dr.core.aws`` caches clients by the config's identity."""
    from botocore.config import Config

    return Config(**SECRETS_CLIENT_SETTINGS)


def _secrets_client(region: str) -> Any:
    """A Secrets Manager client with the short timeouts above.

    botocore and boto3 are imported here, not with the module: they are most of the checker's import time (measured
    with ``python -X importtime``, benchmarks/health_check_latency.py), and a checker whose credentials come from files
    (the local cloud's) never needs them. With Secrets Manager, ``warm_up`` pays for them before the first request.
    """
    from iot_dr.core import aws

    return aws.client("secretsmanager", region, _secrets_config())


def load_credentials(settings: HealthCheckSettings) -> CheckerCredentials:
    """The checker's credentials, from Secrets Manager through the cache, or from files (local runs and tests)."""
    if settings.credentials_secret_arn:
        arn = settings.credentials_secret_arn
        return _CREDENTIALS.get(arn, lambda: credentials_from_secret(_secrets_client(settings.region), arn))
    if not (settings.cert_path and settings.key_path and settings.shared_secret):
        raise NoSecretConfigured("no credentials configured")
    return CheckerCredentials(
        Path(settings.cert_path).read_bytes(), Path(settings.key_path).read_bytes(), settings.shared_secret
    )


def warm_up(environ: Mapping[str, str] | None = None) -> None:
    """Lambda's init phase: read the credentials from Secrets Manager into the cache now, so the first request's
    budget is spent on the MQTT round trip, not on importing botocore and fetching the secret. Never raises: a
    misconfiguration or an unreachable Secrets Manager is answered by the request (403 or 503), not by a failed init.
    """
    try:
        settings = HealthCheckSettings.from_env(environ)
        if settings.credentials_secret_arn:
            load_credentials(settings)
    except Exception as err:  # the first request reads again and answers with the reason
        LOG.warning("credentials not preloaded", extra={"detail": str(err)[:300]})


def presented_secret(event: Mapping[str, Any], allow_query: bool) -> str | None:
    """The secret from the ``x-health-check-secret`` header, or from ``?hashme=`` when that form is enabled.

    Route 53 cannot send headers, so the query-string form exists for Route 53 health checks; it stays off unless
    the deployment needs it, because query strings end up in more places (health-check configuration, proxies).
    """
    headers = event.get("headers") or {}
    for name, value in headers.items():  # API Gateway keeps the caller's case; HTTP header names are not
        if name.lower() == SECRET_HEADER and value:
            return str(value)
    if allow_query:
        value = (event.get("queryStringParameters") or {}).get(SECRET_QUERY_PARAMETER)
        if value:
            return str(value)
    return None


def secret_matches(presented: str | None, expected: str) -> bool:
    """Whether the presented secret equals ``expected``, compared in constant time; False when none was presented."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True)
class RoundTripResult:
    """Outcome and per-stage timings (milliseconds) of one probe."""

    healthy: bool
    reason: str
    received: int
    expected: int
    connect_ms: float | None = None
    subscribe_ms: float | None = None
    publish_ms: float | None = None
    receive_ms: float | None = None
    total_ms: float | None = None


class _Probe:
    """Callback state of one round trip; lives only as long as the request that created it."""

    def __init__(self, payloads: set[bytes]) -> None:
        self.connected: Future[None] = Future()
        self.stopped = threading.Event()
        self._missing = set(payloads)
        self._lock = threading.Lock()
        self.all_received = threading.Event()

    def received_count(self, expected: int) -> int:
        with self._lock:
            return expected - len(self._missing)

    def on_connection_success(self, _data: mqtt5.LifecycleConnectSuccessData) -> None:
        if not self.connected.done():
            self.connected.set_result(None)

    def on_connection_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        if not self.connected.done():
            self.connected.set_exception(ProbeFailed("connect_failed", str(data.exception)))

    def on_publish_received(self, data: mqtt5.PublishReceivedData) -> None:
        with self._lock:
            self._missing.discard(bytes(data.publish_packet.payload))
            if not self._missing:
                self.all_received.set()

    def on_stopped(self, _data: mqtt5.LifecycleStoppedData) -> None:
        self.stopped.set()


def _remaining(deadline: float, clock: Callable[[], float]) -> float:
    return max(0.0, deadline - clock())


def _await(future: Future[Any], deadline: float, clock: Callable[[], float], stage: str) -> Any:
    try:
        return future.result(_remaining(deadline, clock))
    except FutureTimeout as err:
        raise ProbeFailed(f"{stage}_timeout") from err
    except AwsCrtError as err:
        raise ProbeFailed(f"{stage}_failed", str(err)) from err


def mqtt_round_trip(
    settings: HealthCheckSettings,
    credentials: CheckerCredentials,
    clock: Callable[[], float] = time.monotonic,
    budget: float | None = None,
) -> RoundTripResult:
    """Connect, subscribe, publish ``settings.count`` QoS 1 messages to a unique topic and receive them, within
    ``budget`` seconds (default ``settings.total_timeout``)."""
    start = clock()
    total = settings.total_timeout if budget is None else min(budget, settings.total_timeout)
    deadline = start + total - _STOP_ALLOWANCE
    nonce = uuid.uuid4().hex
    topic = f"{settings.topic_prefix}/{nonce}"
    payloads = [f"{nonce}:{n}".encode() for n in range(settings.count)]
    probe = _Probe(set(payloads))
    socket_options = io.SocketOptions()
    socket_options.connect_timeout_ms = int(settings.connect_timeout * 1000)
    client = mqtt5_client_builder.mtls_from_bytes(
        cert_bytes=credentials.certificate_pem,
        pri_key_bytes=credentials.private_key_pem,
        endpoint=settings.endpoint,
        port=settings.port,
        ca_filepath=settings.ca_path,
        client_id=f"{settings.client_id}-{nonce}",
        socket_options=socket_options,
        session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
        offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT,
        extended_validation_and_flow_control_options=mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
        connack_timeout_ms=int(settings.connect_timeout * 1000),
        ack_timeout_sec=max(1, int(settings.total_timeout + 0.999)),
        min_reconnect_delay_ms=int(settings.total_timeout * 1000) + 1000,
        on_publish_received=probe.on_publish_received,
        on_lifecycle_connection_success=probe.on_connection_success,
        on_lifecycle_connection_failure=probe.on_connection_failure,
        on_lifecycle_stopped=probe.on_stopped,
    )
    marks: dict[str, float] = {}
    reason = "ok"
    client.start()
    try:
        _await(probe.connected, deadline, clock, "connect")
        marks["connect_ms"] = clock()
        suback = _await(
            client.subscribe(mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)])),
            deadline,
            clock,
            "subscribe",
        )
        if any(code >= 128 for code in suback.reason_codes):
            raise ProbeFailed("subscribe_rejected", str(suback.reason_codes))
        marks["subscribe_ms"] = clock()
        publishes = [
            client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE))
            for payload in payloads
        ]
        for publish in publishes:
            completion = _await(publish, deadline, clock, "publish")
            if completion.puback is None or completion.puback.reason_code >= 128:
                raise ProbeFailed("publish_rejected")
        marks["publish_ms"] = clock()
        if not probe.all_received.wait(_remaining(deadline, clock)):
            raise ProbeFailed("receive_timeout")
        marks["receive_ms"] = clock()
    except ProbeFailed as failure:
        reason = failure.reason
    finally:
        client.stop()
        probe.stopped.wait(_remaining(start + total, clock))
    end = clock()
    stage_ms: dict[str, float] = {}
    previous = start
    for name in ("connect_ms", "subscribe_ms", "publish_ms", "receive_ms"):
        if name in marks:
            stage_ms[name] = round((marks[name] - previous) * 1000, 1)
            previous = marks[name]
    return RoundTripResult(
        healthy=reason == "ok",
        reason=reason,
        received=probe.received_count(settings.count),
        expected=settings.count,
        total_ms=round((end - start) * 1000, 1),
        **stage_ms,
    )


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(body),
    }


def malformed_reason(event: Any) -> str | None:
    """Why ``event`` is not an API Gateway REST proxy request (None when it is one)."""
    if not isinstance(event, Mapping) or not isinstance(event.get("httpMethod"), str):
        return "not an API Gateway proxy request"
    for part in ("headers", "queryStringParameters", "requestContext"):
        if event.get(part) is not None and not isinstance(event.get(part), Mapping):
            return f"{part} is not an object"
    return None


def handle_request(
    event: Mapping[str, Any],
    settings: HealthCheckSettings,
    credentials_loader: Callable[[HealthCheckSettings], CheckerCredentials] = load_credentials,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """API Gateway proxy request in, proxy response out: 400 malformed, 403 without the right secret (or with none
    configured), 503 when the credentials cannot be read, else 200 or 503 from the round trip, all within
    ``settings.total_timeout`` from the call."""
    start = clock()
    malformed = malformed_reason(event)
    if malformed:
        LOG.warning("health check rejected", extra={"reason": "malformed_request", "detail": malformed})
        return _response(400, {"status": "bad_request"})
    source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    try:
        credentials = credentials_loader(settings)
    except NoSecretConfigured as err:
        LOG.error("health check rejected", extra={"reason": "no_secret_configured", "detail": str(err)})
        return _response(403, {"status": "forbidden"})
    except Exception as err:  # any failure to read the credentials is this region's answer, not a crash (502)
        LOG.error("health check failed", extra={"reason": "credentials_unavailable", "detail": str(err)[:300]})
        return _response(503, {"status": "unhealthy", "reason": "credentials_unavailable"})
    presented = presented_secret(event, settings.allow_query_secret)
    if not secret_matches(presented, credentials.shared_secret):
        reason = "missing_secret" if presented is None else "bad_secret"
        LOG.warning("health check rejected", extra={"reason": reason, "source_ip": source_ip})
        return _response(403, {"status": "forbidden"})
    result = mqtt_round_trip(settings, credentials, clock, budget=settings.total_timeout - (clock() - start))
    LOG.info(
        "health check",
        extra={"endpoint": settings.endpoint, "port": settings.port, "source_ip": source_ip, **asdict(result)},
    )
    if result.healthy:
        return _response(200, {"status": "healthy", "totalMs": result.total_ms})
    return _response(503, {"status": "unhealthy", "reason": result.reason})


def is_scheduled_event(event: Any) -> bool:
    """An EventBridge schedule's event (canary mode) rather than an API Gateway request."""
    return isinstance(event, Mapping) and event.get("detail-type") == "Scheduled Event" and "httpMethod" not in event


def run_canary(
    settings: HealthCheckSettings,
    credentials_loader: Callable[[HealthCheckSettings], CheckerCredentials] = load_credentials,
    emit: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Canary mode: one round trip on EventBridge's schedule, reported as the metric ``IoTDR/MqttHealthy`` (1 or 0,
    dimension ``Endpoint``) that the stack's alarm, and through it the Route 53 health check, watch. No secret is
    involved: EventBridge invokes the function with its resource policy, and nobody else can reach it."""
    try:
        result = mqtt_round_trip(settings, credentials_loader(settings))
        healthy, reason = result.healthy, result.reason
    except Exception as err:  # unreadable credentials: the region cannot be checked, which counts as unhealthy
        LOG.error("canary failed", extra={"reason": "credentials_unavailable", "detail": str(err)[:300]})
        healthy, reason = False, "credentials_unavailable"
    emit(metrics.emf_line("MqttHealthy", 1 if healthy else 0, {"Endpoint": settings.endpoint}, unit="None"))
    LOG.info("canary", extra={"endpoint": settings.endpoint, "healthy": healthy, "reason": reason})
    return {"healthy": healthy, "reason": reason}


def misconfigured_response() -> dict[str, Any]:
    """The answer when the function's settings are invalid: 403, as no caller can be checked against them."""
    return _response(403, {"status": "forbidden"})
