"""Route 53 emulation: health-check thresholds, failover answers and the CNAME in a real DNS server."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from failover_support import CNAME, PRIMARY_TARGET, SECONDARY_TARGET
from moto import mock_aws

from iot_dr_local import route53_status
from iot_dr_local.dns_server import KnotDnsServer
from iot_dr_local.route53 import (
    ROUTE53_USER_AGENT,
    FailoverRecord,
    HealthCheckConfig,
    Route53Emulator,
    failover_records_from_route53,
    health_check_from_route53,
    proxy_event,
)


class ScriptedTarget:
    """An API Gateway proxy integration whose answers the test sets; it records the requests it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        self.requests.append(event)
        time.sleep(self.delay)
        return {"statusCode": self.status, "body": json.dumps({"status": "scripted"})}


def cname(server: KnotDnsServer) -> str:
    return str(server.resolver().resolve(CNAME, "CNAME")[0].target).rstrip(".")


@pytest.fixture
def targets() -> tuple[ScriptedTarget, ScriptedTarget]:
    return ScriptedTarget(), ScriptedTarget()


@pytest.fixture
def emulator(dns_server: KnotDnsServer, targets: tuple[ScriptedTarget, ScriptedTarget]) -> Iterator[Route53Emulator]:
    emulator = Route53Emulator(dns_server.updater())
    for check_id, target in zip(("primary", "secondary"), targets, strict=True):
        emulator.add_health_check(HealthCheckConfig(check_id, "/v1/health-check?hashme=s", 0.1, 3), target)
    emulator.add_failover_record(FailoverRecord(CNAME, PRIMARY_TARGET, SECONDARY_TARGET, "primary", "secondary", 1))
    yield emulator
    emulator.stop()


def test_cname_moves_only_when_the_failure_threshold_is_reached_and_moves_back_after_as_many_successes(
    emulator: Route53Emulator, dns_server: KnotDnsServer, targets: tuple[ScriptedTarget, ScriptedTarget]
) -> None:
    primary, _ = targets
    primary.status = 503
    for _ in range(2):
        emulator.probe_once("primary")
        assert emulator.healthy("primary")
        assert cname(dns_server) == PRIMARY_TARGET

    emulator.probe_once("primary")

    assert not emulator.healthy("primary")
    assert cname(dns_server) == SECONDARY_TARGET
    primary.status = 200
    for _ in range(2):
        emulator.probe_once("primary")
        assert cname(dns_server) == SECONDARY_TARGET
    emulator.probe_once("primary")
    assert cname(dns_server) == PRIMARY_TARGET
    failover, failback = emulator.switches
    assert (failover.to_target, failback.to_target) == (SECONDARY_TARGET, PRIMARY_TARGET)
    assert failover.cause.streak_started_at <= failover.cause.decided_at <= failover.dns_updated_at


def test_a_success_inside_a_failure_streak_starts_the_count_again(
    emulator: Route53Emulator, targets: tuple[ScriptedTarget, ScriptedTarget]
) -> None:
    primary, _ = targets
    for status in (503, 503, 200, 503, 503):
        primary.status = status
        emulator.probe_once("primary")

    assert emulator.healthy("primary")


def test_an_answer_slower_than_two_seconds_counts_as_a_failure(dns_server: KnotDnsServer) -> None:
    target = ScriptedTarget()
    target.delay = 0.05
    emulator = Route53Emulator(dns_server.updater())
    emulator.add_health_check(HealthCheckConfig("slow", "/v1/health-check", 1, 1, response_timeout=0.02), target)

    result = emulator.probe_once("slow")

    assert result.status == 200 and not result.healthy
    assert not emulator.healthy("slow")


def test_a_crashing_handler_counts_as_a_502_failure(dns_server: KnotDnsServer) -> None:
    def crash(_event: dict[str, Any]) -> Mapping[str, Any]:
        raise RuntimeError("handler bug")

    emulator = Route53Emulator(dns_server.updater())
    emulator.add_health_check(HealthCheckConfig("crash", "/v1/health-check", 1, 1), crash)

    assert emulator.probe_once("crash").status == 502
    assert not emulator.healthy("crash")


def test_with_both_regions_unhealthy_route53_answers_the_primary(
    emulator: Route53Emulator, dns_server: KnotDnsServer, targets: tuple[ScriptedTarget, ScriptedTarget]
) -> None:
    primary, secondary = targets
    primary.status = secondary.status = 503
    for _ in range(3):
        emulator.probe_once("secondary")
    for _ in range(3):
        emulator.probe_once("primary")

    assert not emulator.healthy("primary") and not emulator.healthy("secondary")
    assert emulator.answer(CNAME) == PRIMARY_TARGET
    assert cname(dns_server) == PRIMARY_TARGET


def test_a_failed_dns_update_is_retried_after_the_next_probe(
    emulator: Route53Emulator, dns_server: KnotDnsServer, targets: tuple[ScriptedTarget, ScriptedTarget]
) -> None:
    primary, _ = targets
    primary.status = 503
    dns_server.stop()
    for _ in range(3):
        emulator.probe_once("primary")
    assert emulator.answer(CNAME) == PRIMARY_TARGET and emulator.switches == []

    dns_server.start()
    emulator.probe_once("primary")

    assert emulator.answer(CNAME) == SECONDARY_TARGET
    assert cname(dns_server) == SECONDARY_TARGET


def test_checks_run_on_their_request_interval(
    emulator: Route53Emulator, targets: tuple[ScriptedTarget, ScriptedTarget]
) -> None:
    emulator.start()
    time.sleep(0.55)
    emulator.stop()

    for check_id, target in zip(("primary", "secondary"), targets, strict=True):
        assert 5 <= len(target.requests) <= 7
        results = emulator.probe_results(check_id)
        assert len(results) == len(target.requests)
        assert all(later.at - earlier.at >= 0.08 for earlier, later in itertools.pairwise(results))


def test_requests_look_like_api_gateway_proxy_events_from_route53() -> None:
    event = proxy_event(HealthCheckConfig("c", "/v1/health-check?hashme=abc&x=1", fqdn="api.example.com"))

    assert event["httpMethod"] == "GET"
    assert event["resource"] == "/health-check"
    assert event["requestContext"]["stage"] == "v1"
    assert event["queryStringParameters"] == {"hashme": "abc", "x": "1"}
    assert event["headers"]["User-Agent"] == ROUTE53_USER_AGENT
    assert event["headers"]["Host"] == "api.example.com"


def _create_health_check(route53: Any, **settings: Any) -> str:
    """A health check of the health checker's API, as the health-checker stack creates it; its ID."""
    config = {
        "Type": "HTTPS",
        "FullyQualifiedDomainName": "abc.execute-api.us-east-1.amazonaws.com",
        "Port": 443,
        "ResourcePath": "/v1/health-check?hashme=s",
        **settings,
    }
    return str(route53.create_health_check(CallerReference="primary", HealthCheckConfig=config)["HealthCheck"]["Id"])


def test_health_checks_and_failover_records_are_read_from_the_route53_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        route53 = boto3.client("route53", region_name="us-east-1")
        check_id = _create_health_check(route53, RequestInterval=10, FailureThreshold=2)
        zone_id = route53.create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"]
        changes = [
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": "iot.example.com",
                    "Type": "CNAME",
                    "TTL": 60,
                    "SetIdentifier": role,
                    "Failover": role,
                    "ResourceRecords": [{"Value": target}],
                    **({"HealthCheckId": check_id} if role == "PRIMARY" else {}),
                },
            }
            for role, target in (
                ("PRIMARY", "a-ats.iot.us-east-1.amazonaws.com"),
                ("SECONDARY", "a-ats.iot.us-west-2.amazonaws.com"),
            )
        ]
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

        [record] = failover_records_from_route53(route53, zone_id)
        config = health_check_from_route53(route53, check_id, request_interval=0.5)

    assert record == FailoverRecord(
        "iot.example.com.", "a-ats.iot.us-east-1.amazonaws.com", "a-ats.iot.us-west-2.amazonaws.com", check_id, None, 60
    )
    assert (config.resource_path, config.request_interval, config.failure_threshold) == (
        "/v1/health-check?hashme=s",
        0.5,
        2,
    )


def test_a_probe_cut_short_by_the_shutdown_is_neither_logged_as_an_error_nor_a_failover(
    dns_server: KnotDnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = Route53Emulator(dns_server.updater())

    def ended_during_the_probe(event: dict[str, Any]) -> Mapping[str, Any]:
        emulator.halt()  # local up is stopping: it ends the checker's worker process while this probe waits for it
        raise ChildProcessError("the function's worker process exited")

    emulator.add_health_check(HealthCheckConfig("primary", "/v1/health-check?hashme=s", 0.1, 1), ended_during_the_probe)
    emulator.add_health_check(HealthCheckConfig("secondary", "/v1/health-check?hashme=s", 0.1, 1), ScriptedTarget())
    emulator.add_failover_record(FailoverRecord(CNAME, PRIMARY_TARGET, SECONDARY_TARGET, "primary", "secondary", 1))

    with caplog.at_level("INFO", logger="iot_dr_local"):
        result = emulator.probe_once("primary")

    assert result.status == 502
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []
    assert (emulator.healthy("primary"), emulator.switches, emulator.answer(CNAME)) == (True, [], PRIMARY_TARGET)


def test_get_health_check_status_reports_the_emulated_checkers_last_probe(
    monkeypatch: pytest.MonkeyPatch, dns_server: KnotDnsServer
) -> None:
    """Route 53 answers each checker's latest observation of the endpoint
    (https://docs.aws.amazon.com/Route53/latest/APIReference/API_GetHealthCheckStatus.html); moto always answers one
    fixed "Success", which would hide the drill's simulated outage from it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    target = ScriptedTarget(status=403)
    with mock_aws():
        route53 = boto3.client("route53", region_name="us-east-1")
        check_id = _create_health_check(route53)

        def statuses() -> list[str]:
            observations = route53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
            return [observation["StatusReport"]["Status"] for observation in observations]

        moto_answer = statuses()
        route53_status.install()
        emulator = Route53Emulator(dns_server.updater())
        emulator.add_health_check(HealthCheckConfig(check_id, "/v1/health-check?hashme=s", 0.1, 3), target)
        try:
            route53_status.serve(emulator)
            refused = emulator.probe_once(check_id)
            failing = route53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
            target.status = 200
            emulator.probe_once(check_id)
            healthy = statuses()
            with pytest.raises(route53.exceptions.NoSuchHealthCheck):
                route53.get_health_check_status(HealthCheckId="00000000-0000-0000-0000-000000000000")
        finally:
            route53_status.uninstall()
            emulator.stop()

    assert moto_answer[0].startswith("Success")
    [observation] = failing
    assert observation["StatusReport"]["Status"].startswith("Failure: HTTP Status Code 403, Forbidden")
    assert observation["StatusReport"]["CheckedTime"].timestamp() == pytest.approx(refused.at, abs=0.001)
    assert healthy[0].startswith("Success: HTTP Status Code 200, OK")
