"""A token bucket per AWS IoT API operation, sized from AWS IoT Core's default control-plane quotas.

Tools and syncs that walk a fleet call many operations in parallel threads; botocore's standard retries absorb an
occasional ThrottlingException, but a steady overshoot wastes every retry. ``RateLimiter.acquire(operation)`` blocks
until the operation's bucket has a token, so the calls stay under the quota by construction.

Default quotas (requests per second, per account and region) are the AWS IoT Core defaults listed at
https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits (assumption: the numbers below were
taken from that page's archived copies and the Service Quotas console; an account with raised quotas passes its own
values to ``RateLimiter``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

# Requests per second. Operations not listed use DEFAULT_RATE.
DEFAULT_QUOTAS: dict[str, float] = {
    "AttachPolicy": 15,
    "AttachThingPrincipal": 100,
    "CreateKeysAndCertificate": 10,
    "CreatePolicy": 10,
    "CreatePolicyVersion": 10,
    "CreateThing": 100,
    "DeleteCertificate": 10,
    "DeletePolicy": 10,
    "DeleteThing": 100,
    "DeleteThingShadow": 400,
    "DescribeCertificate": 10,
    "DescribeThing": 350,
    "DetachPolicy": 15,
    "DetachThingPrincipal": 100,
    "GetPolicy": 10,
    "GetPolicyVersion": 15,
    "GetThingShadow": 400,
    "ListAttachedPolicies": 15,
    "ListNamedShadowsForThing": 10,
    "ListPolicyVersions": 10,
    "ListPrincipalThings": 10,
    "ListTargetsForPolicy": 10,
    "ListThingGroupsForThing": 10,
    "ListThingPrincipals": 10,
    "ListThings": 10,
    "RegisterCertificateWithoutCA": 10,
    "SearchIndex": 15,
    "UpdateCertificate": 10,
    "UpdateThingShadow": 400,
}
DEFAULT_RATE = 10.0
# Use this share of each quota: other callers (the replication itself) share the account's quota.
DEFAULT_SHARE = 0.8

ClientT = TypeVar("ClientT")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; ``take`` blocks until one is available."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                # A tolerance: refilling after waiting exactly (1 - tokens) / rate can land a rounding error short.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                delay = (1 - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay


class RateLimiter:
    """One ``TokenBucket`` per operation name (AWS's API names, e.g. ``DescribeThing``)."""

    def __init__(self, quotas: Mapping[str, float] | None = None, share: float = DEFAULT_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._quotas = dict(DEFAULT_QUOTAS if quotas is None else quotas)
        self._share = share
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def rate(self, operation: str) -> float:
        """Requests per second allowed for ``operation``."""
        return self._quotas.get(operation, DEFAULT_RATE) * self._share

    def acquire(self, operation: str) -> float:
        """Block until ``operation`` may be called; returns the seconds waited."""
        with self._lock:
            bucket = self._buckets.get(operation)
            if bucket is None:
                bucket = self._buckets[operation] = TokenBucket(self.rate(operation))
        return bucket.take()


def LimitedClient(client: ClientT, limiter: RateLimiter) -> ClientT:
    """``client`` (a boto3 client) with each operation taking a token from ``limiter`` first.

    ``LimitedClient(iot, limiter).describe_thing(...)`` calls ``limiter.acquire("DescribeThing")``. Paginators are
    limited too: each page request takes a token (a one-page listing, one). Typed as the wrapped client, so callers
    keep its stub types.
    """
    return cast(ClientT, _LimitedClient(client, limiter))


class _LimitedClient:
    def __init__(self, client: object, limiter: RateLimiter) -> None:
        self._client = client
        self._limiter = limiter
        self._names: dict[str, str] = getattr(client, "meta").method_to_api_mapping  # noqa: B009

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._client, name)
        operation = self._names.get(name)
        if operation is None or not callable(attribute):
            return attribute

        def limited(*args: object, **kwargs: object) -> object:
            self._limiter.acquire(operation)
            return attribute(*args, **kwargs)

        return limited

    def get_paginator(self, name: str) -> object:
        paginator = self._client.get_paginator(name)  # type: ignore[attr-defined]
        # botocore's Paginator calls the operation method it was built with once per page (botocore 1.44.8, pinned:
        # Paginator._method): with the limited method, each page's request takes one token, and only requests do.
        paginator._method = getattr(self, name)
        return paginator
