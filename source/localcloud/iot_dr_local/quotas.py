"""Quota emulation: IoT API calls above AWS's default rate fail with ThrottlingException, as on AWS.

Off unless asked for (``iot-dr local up --quotas aws-default``, ``LocalCloud(quotas="aws-default")``). Each
(region, service, operation) of the rate table has a token bucket holding up to one second of requests that refills at
the documented rate; a call that finds the bucket empty is refused before moto sees it. The account is implicit: the
local cloud has one.

The refusal has the shape AWS IoT documents for ThrottlingException ("The rate exceeds the limit"): HTTP 400 for
the control plane (https://docs.aws.amazon.com/iot/latest/apireference/CommonErrors.html and each operation's Errors
section) and HTTP 429 for the Device Shadow REST API
(https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_UpdateThingShadow.html), with the error type in the
``x-amzn-ErrorType`` header and ``{"message": "Rate exceeded"}`` as the body, which botocore turns into a
ClientError whose code is ``ThrottlingException`` (retried by its standard retry mode).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto.core.responses import BaseResponse

from iot_dr_local.patching import Patches
from iot_dr_local.quota_rules import QUOTA_PROFILES, Rates

THROTTLING_STATUS = {"iot": 400, "iot-data": 429}


class TokenBucket:
    """``rate`` requests per second, bursts of up to ``capacity``; starts full."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self._clock = rate, capacity, clock
        self._tokens, self._stamp = capacity, clock()

    def take(self) -> bool:
        """Take one token if there is one (the caller holds the limiter's lock)."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def resolve_rates(quotas: str | Rates) -> Rates:
    """A profile name (``aws-default``) or a rate table; raises ValueError for an unknown profile."""
    if isinstance(quotas, str):
        if quotas not in QUOTA_PROFILES:
            raise ValueError(f"unknown quota profile {quotas!r}; known: {', '.join(sorted(QUOTA_PROFILES))}")
        return QUOTA_PROFILES[quotas]
    return quotas


class QuotaLimiter:
    """Throttles calls per region, service and operation; ``throttled`` counts refusals by that key."""

    def __init__(self, rates: Rates, clock: Callable[[], float] = time.monotonic) -> None:
        self._rates = dict(rates)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._patches = Patches()
        self._enabled = False
        self.throttled: dict[tuple[str, str, str], int] = {}

    def install(self) -> None:
        self._enabled = True
        if not self._patches.applied:
            self._patches.wrap(BaseResponse, "call_action", self._limiting)

    def uninstall(self) -> None:
        """Lift the emulation. Extensions installed later wrap what they found, our wrapper included (CloudTrail
        wraps ``IoTResponse.call_action``), so restoring ``BaseResponse`` alone would leave IoT calls throttled until
        they are uninstalled too: the wrapper also stops limiting."""
        self._enabled = False
        self._patches.restore()

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.throttled.clear()

    def admit(self, region: str, service: str, operation: str) -> bool:
        """Whether a call may proceed now; operations without a quota always may."""
        rate = self._rates.get((service, operation))
        if rate is None:
            return True
        key = (region, service, operation)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, max(rate, 1.0), self._clock)
            if bucket.take():
                return True
            self.throttled[key] = self.throttled.get(key, 0) + 1
            return False

    def _limiting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def call_action(response: BaseResponse) -> Any:
            service = response.service_name or ""
            if (
                self._enabled
                and service in THROTTLING_STATUS
                and not self.admit(getattr(response, "region", ""), service, response._get_action())
            ):
                return _throttling(THROTTLING_STATUS[service])
            return original(response)

        return call_action


def _throttling(status: int) -> tuple[int, dict[str, str], str]:
    headers = {
        "status": str(status),
        "x-amzn-ErrorType": "ThrottlingException",
        "x-amzn-RequestId": str(uuid.uuid4()),
        "content-type": "application/json",
    }
    return status, headers, json.dumps({"message": "Rate exceeded"})
