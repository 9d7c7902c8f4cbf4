"""The fleet helpers shared by the tools and the region syncs: rate limiting, comparison, enumeration patterns."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from iot_dr.fleet.device import CLASSIC_SHADOW, Device, compare_devices
from iot_dr.fleet.enumeration import name_pattern
from iot_dr.fleet.rate_limit import DEFAULT_QUOTAS, DEFAULT_SHARE, LimitedClient, RateLimiter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_token_bucket_allows_its_burst_then_paces_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert bucket.take() == 0
    for _ in range(20):
        bucket.take()
    # 20 tokens beyond the burst at 10 per second take 2 seconds.
    assert clock.now == pytest.approx(2.0)


def test_rate_limiter_uses_a_share_of_the_aws_default_quota_per_operation() -> None:
    limiter = RateLimiter()
    assert limiter.rate("DescribeThing") == DEFAULT_QUOTAS["DescribeThing"] * DEFAULT_SHARE
    assert limiter.rate("AttachPolicy") == 15 * DEFAULT_SHARE
    assert RateLimiter({"DescribeThing": 100}, share=1).rate("DescribeThing") == 100
    with pytest.raises(ValueError, match="share"):
        RateLimiter(share=0)


def policy_document(region: str) -> str:
    statement = {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"arn:aws:iot:{region}:1:topic/a"}
    return json.dumps({"Statement": [statement], "Version": "2012-10-17"}, sort_keys=True)


def device(**overrides: object) -> Device:
    fields: dict[str, object] = {
        "name": "d1",
        "attributes": {"site": "paris"},
        "thing_type": None,
        "groups": [],
        "certificates": {"c1": {"status": "ACTIVE", "policies": ["p"]}},
        "policies": {"p": {"default": policy_document("us-east-1"), "documents": [policy_document("us-east-1")]}},
        "shadows": {CLASSIC_SHADOW: {"reported": {"t": 1}}},
    }
    fields.update(overrides)
    return Device(**fields)  # type: ignore[arg-type]


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.taken: list[str] = []

    def acquire(self, operation: str) -> float:
        self.taken.append(operation)
        return 0.0


@pytest.mark.parametrize("pages", [1, 3])
def test_a_paginated_listing_takes_one_token_per_page_request(pages: int) -> None:
    iot = boto3.client("iot", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    limiter = CountingLimiter()
    with Stubber(iot) as stub:
        for page in range(pages):
            more = {"nextToken": f"t{page}"} if page < pages - 1 else {}
            stub.add_response("list_thing_groups_for_thing", {"thingGroups": [], **more})
        paginator = LimitedClient(iot, limiter).get_paginator("list_thing_groups_for_thing")
        assert len(list(paginator.paginate(thingName="t"))) == pages  # type: ignore[attr-defined]
    assert limiter.taken == ["ListThingGroupsForThing"] * pages


def test_policies_compare_with_region_aware_arns_and_every_certificate_counts() -> None:
    secondary_policy = {"default": policy_document("us-west-2"), "documents": [policy_document("us-west-2")]}
    primary = device()
    assert compare_devices(primary, device(policies={"p": secondary_policy}), "us-east-1", "us-west-2") == []
    # The primary's ARNs unchanged in the secondary are drift: the replication must rewrite them.
    [policy_drift] = compare_devices(primary, device(), "us-east-1", "us-west-2")
    assert policy_drift.field == "policies/p"
    two_certificates = device(
        policies={"p": secondary_policy},
        certificates={"c1": {"status": "ACTIVE", "policies": ["p"]}, "c2": {"status": "INACTIVE", "policies": []}},
    )
    [extra] = compare_devices(primary, two_certificates, "us-east-1", "us-west-2")
    assert (extra.field, extra.primary, extra.secondary) == (
        "certificates/c2",
        None,
        {"status": "INACTIVE", "policies": []},
    )


def test_a_missing_device_is_one_difference() -> None:
    [missing] = compare_devices(device(), None, "us-east-1", "us-west-2")
    assert (missing.field, missing.primary, missing.secondary) == ("thing", True, False)
    assert compare_devices(None, None, "us-east-1", "us-west-2") == []


@pytest.mark.parametrize(
    ("query", "pattern"),
    [("thingName:dr-*", "dr-*"), ("*", "*"), ("thingName:a AND attributes.x:1", None), ("attributes.site:x", None)],
)
def test_queries_listthings_can_answer(query: str, pattern: str | None) -> None:
    assert name_pattern(query) == pattern
