"""Fault injection: make chosen API operations fail (throttling by default), slowly if asked, make workflow
executions fail, or take a region's API down.

Used by the failure tests (and later by drills) to show that throttling is absorbed with backoff and that
the secondary applies what it already has while the primary region is unreachable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.core.responses import BaseResponse
from moto.core.utils import camelcase_to_underscores

from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.patching import Patches

# Services AWS serves globally (their endpoints sign with us-east-1): a regional outage does not take them down.
GLOBAL_SERVICES = frozenset({"route53", "iam", "sts", "organizations", "cloudfront"})


@dataclass
class _Failure:
    service: str
    operation: str
    region: str
    remaining: int
    code: str
    status: int
    delay: float


@dataclass
class _ExecutionFailure:
    region: str
    remaining: int
    error: str
    cause: str


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._execution_failures: list[_ExecutionFailure] = []
        self._down: set[str] = set()
        self._patches = Patches()
        self.injected = 0

    def install(self) -> None:
        if not self._patches.applied:
            self._patches.wrap(BaseResponse, "call_action", self._injecting)

    def uninstall(self) -> None:
        self._patches.restore()

    def _injecting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def call_action(response: BaseResponse) -> Any:
            fault = self._fault_for(response)
            if fault is None:
                return original(response)
            delay, error = fault
            if delay:
                # A slow failure holds up its caller only, never the rest of the local cloud.
                with SERVICE_LOCK.released():
                    time.sleep(delay)
            return error

        return call_action

    def fail(
        self,
        service: str,
        operation: str,
        region: str,
        times: int,
        code: str = "ThrottlingException",
        status: int = 400,
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` calls of ``operation`` (snake_case) in ``region`` fail with error ``code``, each after
        ``delay`` seconds (a call that hangs, then fails)."""
        with self._lock:
            self._failures.append(_Failure(service, operation, region, times, code, status, delay))

    def fail_executions(
        self, region: str, times: int, error: str = "States.Runtime", cause: str = "injected execution failure"
    ) -> None:
        """The next ``times`` Step Functions executions started in ``region`` end FAILED with ``error`` before their
        first state, as an execution the service could not run does (served by ``step_functions``)."""
        with self._lock:
            self._execution_failures.append(_ExecutionFailure(region, times, error, cause))

    def execution_fault(self, region: str) -> tuple[str, str] | None:
        """``(error, cause)`` if an execution starting now in ``region`` is to fail (counts it), else None."""
        with self._lock:
            for failure in self._execution_failures:
                if failure.region == region and failure.remaining > 0:
                    failure.remaining -= 1
                    self.injected += 1
                    return failure.error, failure.cause
        return None

    def throttle(self, service: str, operation: str, region: str, times: int) -> None:
        self.fail(service, operation, region, times)

    def take_down(self, region: str) -> None:
        """Every API call to ``region`` (except ``GLOBAL_SERVICES``) fails with 503 until ``bring_up``: a regional
        outage."""
        with self._lock:
            self._down.add(region)

    def bring_up(self, region: str) -> None:
        with self._lock:
            self._down.discard(region)

    def down(self) -> list[str]:
        """The regions taken down."""
        with self._lock:
            return sorted(self._down)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._execution_failures.clear()
            self._down.clear()
            self.injected = 0

    def _fault_for(self, response: BaseResponse) -> tuple[float, tuple[int, dict[str, str], str]] | None:
        """``(delay, error response)`` for a call to fail, else None."""
        region = getattr(response, "region", "")
        with self._lock:
            if region in self._down and (response.service_name or "") not in GLOBAL_SERVICES:
                self.injected += 1
                return 0.0, _error(503, "ServiceUnavailableException", f"region {region} is unavailable")
            if not self._failures:
                return None
            operation = camelcase_to_underscores(response._get_action())
            service = response.service_name or ""
            for failure in self._failures:
                matches = (failure.service, failure.operation, failure.region) == (service, operation, region)
                if matches and failure.remaining > 0:
                    failure.remaining -= 1
                    self.injected += 1
                    return failure.delay, _error(failure.status, failure.code, f"injected {failure.code}")
        return None


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    headers = {"status": str(status), "x-amzn-ErrorType": code, "content-type": "application/json"}
    return status, headers, json.dumps({"__type": code, "message": message})
