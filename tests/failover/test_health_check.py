"""The health-checker Lambda handler against a real mosquitto broker with mutual TLS."""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from failover_support import PRIMARY_ADDRESS, free_port
from moto import mock_aws

from iot_dr.health import health_check
from iot_dr.health.health_check import HealthCheckSettings
from iot_dr_local.mqtt_broker import MosquittoBroker
from iot_dr_local.pki import LocalCA

REPO = Path(__file__).resolve().parents[2]
HANDLER_PATH = REPO / "source/lambda/iot-dr-r53-health-checker/health_checker.py"
EVENT_PATH = REPO / "tests/events/apigateway/health-check-get.json"
SECRET = "correct-horse-battery-staple-0123456789"


def load_event() -> dict[str, Any]:
    return json.loads(EVENT_PATH.read_text())


def request(secret: str | None = SECRET, *, query: str | None = None) -> dict[str, Any]:
    event = load_event()
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "x-health-check-secret"}
    if secret is not None:
        event["headers"]["X-Health-Check-Secret"] = secret
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    if query is not None:
        event["queryStringParameters"] = {"hashme": query}
        event["multiValueQueryStringParameters"] = {"hashme": [query]}
    return event


def load_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("health_checker", HANDLER_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler  # type: ignore[no-any-return]


@pytest.fixture
def checker_identity(local_ca: LocalCA) -> Any:
    return local_ca.issue_device("iot-dr-r53-checker-test")


@pytest.fixture
def broker(start_broker: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    return start_broker("checked", PRIMARY_ADDRESS, free_port(PRIMARY_ADDRESS))


@pytest.fixture
def environment(broker: MosquittoBroker, checker_identity: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "IOT_ENDPOINT": broker.endpoint.address,
        "IOT_PORT": str(broker.endpoint.port),
        "CA_PATH": str(broker.endpoint.ca_path),
        "CERT_PATH": str(checker_identity.cert_path),
        "KEY_PATH": str(checker_identity.key_path),
        "HEALTH_CHECK_SECRET": SECRET,
        "CLIENT_ID": "iot-dr-r53-checker-test",
        "AWS_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_round_trip_through_a_running_broker_is_healthy(environment: dict[str, str]) -> None:
    response = load_handler()(request(), None)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "healthy"
    assert response["headers"]["Content-Type"] == "application/json"


def test_health_is_not_carried_over_from_an_earlier_healthy_check(
    environment: dict[str, str], broker: MosquittoBroker
) -> None:
    handler = load_handler()
    assert handler(request(), None)["statusCode"] == 200

    broker.stop()
    response = handler(request(), None)

    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"status": "unhealthy", "reason": "connect_failed"}


def test_missing_or_wrong_secret_is_forbidden(environment: dict[str, str]) -> None:
    handler = load_handler()

    for event in (request(None), request("wrong"), request(SECRET + "x"), request(SECRET[:-1])):
        response = handler(event, None)
        assert response["statusCode"] == 403
        assert json.loads(response["body"]) == {"status": "forbidden"}


def test_query_string_secret_is_refused_unless_enabled(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler()
    assert handler(request(None, query=SECRET), None)["statusCode"] == 403

    monkeypatch.setenv("ALLOW_QUERY_SECRET", "true")
    assert handler(request(None, query=SECRET), None)["statusCode"] == 200
    assert handler(request(None, query="wrong"), None)["statusCode"] == 403


def test_one_structured_log_line_per_check_has_timings_and_never_the_secret(
    environment: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    handler = load_handler()
    with caplog.at_level(logging.INFO, logger="iot_dr.health.health_check"):
        handler(request(), None)
        handler(request("wrong"), None)

    records = [r for r in caplog.records if r.name == "iot_dr.health.health_check"]
    assert [r.getMessage() for r in records] == ["health check", "health check rejected"]
    check = json.loads(LambdaPowertoolsFormatter().format(records[0]))
    assert check["healthy"] is True
    assert check["received"] == check["expected"] == 2
    for stage in ("connect_ms", "subscribe_ms", "publish_ms", "receive_ms", "total_ms"):
        assert isinstance(check[stage], float)
    assert json.loads(LambdaPowertoolsFormatter().format(records[1]))["reason"] == "bad_secret"
    assert all(SECRET not in LambdaPowertoolsFormatter().format(r) for r in caplog.records)


@pytest.fixture
def silent_listener() -> Iterator[tuple[str, int]]:
    """Accepts TCP connections and never answers: a broker that hangs during the TLS handshake."""
    server = socket.create_server((PRIMARY_ADDRESS, 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield PRIMARY_ADDRESS, server.getsockname()[1]
    stop.set()
    thread.join()
    for sock in accepted:
        sock.close()
    server.close()


def test_hanging_broker_is_unhealthy_within_the_route53_budget(
    environment: dict[str, str], silent_listener: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOT_PORT", str(silent_listener[1]))
    handler = load_handler()

    started = time.monotonic()
    response = handler(request(), None)
    elapsed = time.monotonic() - started

    assert response["statusCode"] == 503
    assert json.loads(response["body"])["reason"] == "connect_timeout"
    assert elapsed < 2.0, "the 1.5 s budget keeps the answer inside Route 53's 2 s"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"IOT_ENDPOINT": ""}, "IOT_ENDPOINT"),
        ({"CERT_PATH": ""}, "CREDENTIALS_SECRET_ARN"),
        ({"MESSAGE_COUNT": "0"}, "MESSAGE_COUNT"),
        ({"CONNECT_TIMEOUT_MS": "1500", "TOTAL_TIMEOUT_MS": "1500"}, "CONNECT_TIMEOUT_MS"),
    ],
)
def test_invalid_settings_are_rejected_with_the_setting_named(
    environment: dict[str, str], change: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HealthCheckSettings.from_env({**environment, **change})


def test_credentials_and_secret_come_from_secrets_manager(
    environment: dict[str, str], checker_identity: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        secret_arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="checker",
            SecretString=json.dumps(
                {
                    "certificatePem": checker_identity.cert_pem,
                    "privateKey": checker_identity.key_pem,
                    "healthCheckSecret": "from-secrets-manager",
                }
            ),
        )["ARN"]
        settings = HealthCheckSettings.from_env(
            {
                **environment,
                "CERT_PATH": "",
                "KEY_PATH": "",
                "HEALTH_CHECK_SECRET": "",
                "CREDENTIALS_SECRET_ARN": secret_arn,
            }
        )

        assert health_check.handle_request(request(SECRET), settings)["statusCode"] == 403
        assert health_check.handle_request(request("from-secrets-manager"), settings)["statusCode"] == 200


def test_warm_up_reads_the_secret_before_the_first_request_and_never_raises(
    environment: dict[str, str], checker_identity: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        value = {"certificatePem": checker_identity.cert_pem, "privateKey": checker_identity.key_pem}
        secret_arn = secrets.create_secret(
            Name="warm-checker", SecretString=json.dumps({**value, "healthCheckSecret": "warm"})
        )["ARN"]
        env = {
            **environment,
            "CERT_PATH": "",
            "KEY_PATH": "",
            "HEALTH_CHECK_SECRET": "",
            "CREDENTIALS_SECRET_ARN": secret_arn,
        }

        health_check.warm_up(env)
        # Gone from Secrets Manager: only what warm_up read can admit the request.
        secrets.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)

        response = health_check.handle_request(request("warm"), HealthCheckSettings.from_env(env))
    assert response["statusCode"] == 200
    health_check.warm_up({})  # misconfigured: logged, answered by the first request, never an init failure


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ({}, 400),
        ([], 400),
        ({"httpMethod": "GET", "headers": [["X-Health-Check-Secret", SECRET]]}, 400),
        ({"httpMethod": "GET", "headers": None, "queryStringParameters": "hashme=x"}, 400),
        ({"httpMethod": "GET"}, 403),
    ],
    ids=["empty", "not-an-object", "headers-as-list", "query-as-text", "no-headers"],
)
def test_malformed_requests_are_answered_400_or_403_never_raised(
    environment: dict[str, str], event: Any, status: int
) -> None:
    response = load_handler()(event, None)

    assert response["statusCode"] == status


@pytest.mark.parametrize(
    "change",
    [{"HEALTH_CHECK_SECRET": ""}, {"TOTAL_TIMEOUT_MS": "5000"}, {"MESSAGE_COUNT": "two"}],
    ids=["no-secret-configured", "total-timeout-beyond-route53", "not-a-number"],
)
def test_a_misconfigured_checker_answers_403_instead_of_failing_the_invocation(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, change: dict[str, str]
) -> None:
    for key, value in change.items():
        monkeypatch.setenv(key, value)

    assert load_handler()(request(), None)["statusCode"] == 403


def test_total_timeout_beyond_route53s_two_seconds_is_refused(environment: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="TOTAL_TIMEOUT_MS must be at most 1900"):
        HealthCheckSettings.from_env({**environment, "TOTAL_TIMEOUT_MS": "5000"})


def test_a_hung_secrets_manager_cannot_push_the_answer_past_two_seconds(
    environment: dict[str, str], silent_listener: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{silent_listener[0]}:{silent_listener[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-hung-secrets")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = HealthCheckSettings.from_env(
        {**environment, "CERT_PATH": "", "KEY_PATH": "", "HEALTH_CHECK_SECRET": "", "CREDENTIALS_SECRET_ARN": "hung"}
    )

    started = time.monotonic()
    response = health_check.handle_request(request(), settings)
    elapsed = time.monotonic() - started

    assert response["statusCode"] == 503
    assert json.loads(response["body"])["reason"] == "credentials_unavailable"
    assert elapsed < 2.0, "one attempt of 0.3 s connect + 0.5 s read, plus creating the client, inside Route 53's 2 s"


def test_cached_credentials_outlive_a_failed_refresh_and_are_refreshed_after_the_interval(
    checker_identity: Any,
) -> None:
    now = [0.0]
    cache = health_check.CredentialsCache(refresh_seconds=300, clock=lambda: now[0])
    first = health_check.CheckerCredentials(b"cert", b"key", "first")
    second = health_check.CheckerCredentials(b"cert", b"key", "second")

    def unavailable() -> health_check.CheckerCredentials:
        raise TimeoutError("Secrets Manager did not answer")

    assert cache.get("arn", lambda: first) is first
    now[0] = 299
    assert cache.get("arn", unavailable) is first, "inside the interval the cache answers without a call"
    now[0] = 301
    assert cache.get("arn", unavailable) is first, "a failed refresh keeps the last good credentials"
    assert cache.get("arn", lambda: second) is second
    with pytest.raises(TimeoutError):
        health_check.CredentialsCache().get("arn", unavailable)


def scheduled_event() -> dict[str, Any]:
    return json.loads((REPO / "tests/events/eventbridge/scheduled-event.json").read_text())


def mqtt_healthy_values(stdout: str) -> list[float]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    documents = [document for document in lines if "MqttHealthy" in document]
    for document in documents:
        assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "MqttHealthy", "Unit": "None"}]
    return [document["MqttHealthy"] for document in documents]


def test_canary_mode_reports_each_scheduled_probe_as_the_metric_route53s_alarm_watches(
    environment: dict[str, str], broker: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = load_handler()

    assert handler(scheduled_event(), None) == {"healthy": True, "reason": "ok"}
    broker.stop()
    assert handler(scheduled_event(), None) == {"healthy": False, "reason": "connect_failed"}

    assert mqtt_healthy_values(capsys.readouterr().out) == [1, 0]
