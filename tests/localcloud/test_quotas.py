"""Quota emulation: IoT calls above AWS's default rate are throttled as AWS throttles them, calls below it never are.

AWS IoT Core's API throttling limits: https://docs.aws.amazon.com/general/latest/gr/iot-core.html#limits_iot;
ThrottlingException is HTTP 400 on the control plane and HTTP 429 on the Device Shadow REST API
(https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_UpdateThingShadow.html).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from iot_dr_local import cloudtrail
from iot_dr_local.cloud import LocalCloud
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.quota_rules import AWS_DEFAULT_RATES
from iot_dr_local.quotas import QuotaLimiter, TokenBucket, resolve_rates

PRIMARY, SECONDARY = "us-east-1", "us-west-2"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def limiter(aws: str) -> Iterator[QuotaLimiter]:
    quotas = QuotaLimiter(resolve_rates("aws-default"))
    quotas.install()
    yield quotas
    quotas.uninstall()


def client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, config=NO_RETRIES)


def most_a_bucket_admits(rate: float, elapsed: float) -> int:
    """A token bucket starts full (``rate`` tokens) and refills at ``rate`` per second: the most it can admit."""
    return int(rate + rate * elapsed) + 1


def outcomes(call: Callable[[], Any], count: int, interval: float = 0.0) -> list[str]:
    """``OK`` or the error code of each of ``count`` calls, ``interval`` seconds apart."""
    results = []
    for _ in range(count):
        started = time.monotonic()
        try:
            call()
            results.append("OK")
        except ClientError as err:
            results.append(f"{err.response['Error']['Code']} {err.response['ResponseMetadata']['HTTPStatusCode']}")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return results


def test_the_profile_has_the_documented_default_rates_of_the_operations_replication_depends_on() -> None:
    expected = {
        "CreateThing": 100,
        "DescribeThing": 350,
        "ListThings": 10,
        "RegisterCertificateWithoutCA": 10,
        "DescribeCertificate": 10,
        "AttachPolicy": 15,
        "AttachThingPrincipal": 100,
        "CreatePolicy": 10,
        "GetPolicy": 10,
        "ListThingPrincipals": 10,
        "CreateThingGroup": 25,
        "AddThingToThingGroup": 100,
        "SearchIndex": 15,
    }
    assert {name: AWS_DEFAULT_RATES[("iot", name)] for name in expected} == expected
    assert AWS_DEFAULT_RATES[("iot-data", "UpdateThingShadow")] == AWS_DEFAULT_RATES[("iot-data", "GetThingShadow")]
    with pytest.raises(ValueError, match="unknown quota profile 'aws-max'"):
        resolve_rates("aws-max")


def test_a_local_cloud_throttles_only_when_asked_to() -> None:
    assert LocalCloud().quotas is None
    limited = LocalCloud(quotas="aws-default").quotas
    assert limited is not None
    assert [limited.admit(PRIMARY, "iot", "ListThings") for _ in range(11)] == [True] * 10 + [False]
    with pytest.raises(ValueError, match="unknown quota profile"):
        LocalCloud(quotas="aws-max")


def test_uninstalling_the_quotas_of_a_running_local_cloud_lifts_the_emulation_for_iot_too() -> None:
    # CloudTrail's extension, installed after the quotas, wraps IoT's call_action around the quota check: the
    # uninstalled check must not stay reachable through it.
    cloud = LocalCloud(quotas="aws-default")
    cloud.start()
    try:
        quotas = cloud.quotas
        assert quotas is not None
        iot = cloud.client("iot", PRIMARY, NO_RETRIES)
        assert "ThrottlingException 400" in outcomes(iot.list_things, 30)
        quotas.uninstall()
        assert outcomes(iot.list_things, 30) == ["OK"] * 30
        assert outcomes(lambda: iot.list_thing_groups(), 30) == ["OK"] * 30
    finally:
        cloud.stop()


def test_a_control_plane_burst_above_the_rate_is_throttled_with_a_400_throttling_exception(
    limiter: QuotaLimiter,
) -> None:
    iot = client("iot", PRIMARY)
    # ListThings: 10 per second. 40 calls at once: the first second's worth pass, then only what the bucket refills.
    started = time.monotonic()
    results = outcomes(iot.list_things, 40)
    elapsed = time.monotonic() - started
    assert results[:10] == ["OK"] * 10
    assert "ThrottlingException 400" in results
    assert results.count("OK") <= most_a_bucket_admits(10, elapsed), (elapsed, results)
    assert set(results) <= {"OK", "ThrottlingException 400"}
    assert limiter.throttled[(PRIMARY, "iot", "ListThings")] == results.count("ThrottlingException 400")
    # Quotas are per region and per operation: neither the secondary nor another operation is affected.
    assert outcomes(client("iot", SECONDARY).list_things, 5) == ["OK"] * 5
    assert outcomes(lambda: iot.describe_endpoint(endpointType="iot:Data-ATS"), 5) == ["OK"] * 5


def test_calls_below_the_rate_are_never_throttled(limiter: QuotaLimiter) -> None:
    iot = client("iot", PRIMARY)
    # 15 calls at 5 per second, half of ListThings' 10 per second, after a full second of refill.
    assert outcomes(iot.list_things, 15, interval=0.2) == ["OK"] * 15
    assert limiter.throttled == {}


def test_the_raw_throttling_response_has_aws_iots_shape(limiter: QuotaLimiter) -> None:
    session = boto3.session.Session()
    request = session.client("iot", region_name=PRIMARY, config=NO_RETRIES)
    captured: dict[str, Any] = {}

    def keep_raw(response: Any, **_: Any) -> None:
        captured["raw"] = response

    request.meta.events.register("needs-retry.iot.ListThings", keep_raw)
    with pytest.raises(ClientError):  # a burst of 40 must meet the 10 per second limit
        for _ in range(40):
            request.list_things()
    http, parsed = captured["raw"]
    assert http.status_code == 400
    assert http.headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert json.loads(http.content) == {"message": "Rate exceeded"}
    assert parsed["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}


def test_shadow_calls_above_the_rate_are_throttled_with_429(aws: str) -> None:
    # The local cloud cannot serve AWS's 400 shadow requests per second on two cores: a lower rate shows the shape.
    quotas = QuotaLimiter({("iot-data", "UpdateThingShadow"): 5})
    quotas.install()
    try:
        client("iot", PRIMARY).create_thing(thingName="sensor")
        data = client("iot-data", PRIMARY)
        payload = json.dumps({"state": {"reported": {"on": True}}}).encode()
        started = time.monotonic()
        results = outcomes(lambda: data.update_thing_shadow(thingName="sensor", payload=payload), 20)
        elapsed = time.monotonic() - started
    finally:
        quotas.uninstall()
    assert results[:5] == ["OK"] * 5
    assert "ThrottlingException 429" in results
    assert set(results) <= {"OK", "ThrottlingException 429"}
    assert results.count("OK") <= most_a_bucket_admits(5, elapsed), (elapsed, results)


def test_uninstalling_lifts_the_emulation_under_wrappers_installed_after_it(aws: str, dispatcher: Dispatcher) -> None:
    quotas = QuotaLimiter({("iot", "ListThings"): 1})
    quotas.install()
    # CloudTrail events wrap IoT's call_action after the emulation, as in a local cloud.
    trail = cloudtrail.install(dispatcher)
    try:
        iot = client("iot", PRIMARY)
        assert "ThrottlingException 400" in outcomes(iot.list_things, 3)
        quotas.uninstall()
        assert outcomes(iot.list_things, 5) == ["OK"] * 5
    finally:
        trail.uninstall()
        quotas.uninstall()


def test_a_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, capacity=10, clock=lambda: now[0])
    assert [bucket.take() for _ in range(11)] == [True] * 10 + [False]
    now[0] += 0.25
    assert [bucket.take() for _ in range(3)] == [True, True, False]
