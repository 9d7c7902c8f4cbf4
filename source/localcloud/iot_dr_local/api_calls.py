"""A record of every AWS API call the local cloud serves: who called which operation in which region.

Callers are told apart by their access key: each Lambda function signs with ``lambda-<function name>``
(see ``lambda_runtime``), everything else with the caller's own key. Benchmarks and tests use it to state
what replication costs in API calls.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.core.responses import BaseResponse
from moto.core.utils import camelcase_to_underscores

from iot_dr_local.lambda_runtime import LAMBDA_ACCESS_KEY_PREFIX
from iot_dr_local.patching import Patches
from iot_dr_local.rules_engine import RULES_ENGINE_ACCESS_KEY

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")


@dataclass(frozen=True)
class ApiCall:
    caller: str
    service: str
    operation: str
    region: str

    @property
    def by_lambda(self) -> bool:
        return self.caller.startswith(LAMBDA_ACCESS_KEY_PREFIX)

    @property
    def by_rules_engine(self) -> bool:
        return self.caller == RULES_ENGINE_ACCESS_KEY


class ApiCallRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[ApiCall] = Counter()
        self._patches = Patches()

    def install(self) -> None:
        if not self._patches.applied:
            self._patches.wrap(BaseResponse, "call_action", self._recording)

    def uninstall(self) -> None:
        self._patches.restore()

    def _recording(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def call_action(response: BaseResponse) -> Any:
            self._record(response)
            return original(response)

        return call_action

    def _record(self, response: BaseResponse) -> None:
        match = _CREDENTIAL.search(str(response.headers.get("Authorization", "")))
        if match is None:
            return
        caller, region, service = match.groups()
        operation = _operation(response._get_action())
        with self._lock:
            self._calls[ApiCall(caller, service, operation, region)] += 1

    def snapshot(self) -> Counter[ApiCall]:
        with self._lock:
            return Counter(self._calls)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()


@functools.lru_cache(maxsize=1024)
def _operation(action: str) -> str:
    """``CreateThing`` -> ``create_thing``; cached, as the recorder runs on every request under the service lock."""
    return camelcase_to_underscores(action)


def by_solution(calls: Counter[ApiCall]) -> Counter[tuple[str, str, str]]:
    """Calls the solution made (its Lambda functions and its topic rules' actions), per (region, service, operation)."""
    totals: Counter[tuple[str, str, str]] = Counter()
    for call, count in calls.items():
        if call.by_lambda or call.by_rules_engine:
            totals[(call.region, call.service, call.operation)] += count
    return totals
