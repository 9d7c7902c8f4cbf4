"""EventBridge schedules: enabled rules with a ``rate(...)`` ScheduleExpression fire on time.

moto stores scheduled rules but never fires them. Here a background thread sends the documented
"Scheduled Event" to the targets of every due rule in every account and region, through the rule's own
target delivery (the local cloud's EventBridge delivery, installed by ``iot_dr_local.cloudtrail``,
invokes Lambda targets asynchronously and sends to SQS targets). Cron expressions are refused when the
rule is created, so nothing depends on a schedule that would silently never run.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.events.exceptions import ValidationException
from moto.events.models import EventsBackend, Rule, events_backends

from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.patching import Patches
from iot_dr_local.periodic import Periodic

LOG = logging.getLogger(__name__)

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleError(ValueError):
    """A schedule expression the local cloud cannot run."""


def rate_seconds(expression: str) -> int:
    """The period of a ``rate(value unit)`` expression; the unit is singular exactly when value is 1."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise ScheduleError(
            f"The local cloud runs rate(...) schedules only, not {expression!r}; use for example rate(5 minutes)"
        )
    value, unit = int(match[1]), match[2]
    if value < 1 or (value == 1) == unit.endswith("s"):
        raise ScheduleError(f"Invalid schedule {expression!r}: write rate(1 minute) or rate(N minutes) with N > 1")
    return value * _UNIT_SECONDS[unit.removesuffix("s")]


def scheduled_event(account_id: str, region: str, rule_arn: str, moment: float) -> dict[str, Any]:
    """The event EventBridge sends to a scheduled rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def _validated_put_rule(original: Callable[..., Rule]) -> Callable[..., Rule]:
    """Refuse a schedule the scheduler could not run when the rule is created, not when it should fire."""

    def put_rule(backend: EventsBackend, name: str, *args: Any, **kwargs: Any) -> Rule:
        expression = kwargs.get("scheduled_expression")
        if expression:
            try:
                rate_seconds(expression)
            except ScheduleError as err:
                raise ValidationException(str(err)) from err
        return original(backend, name, *args, **kwargs)

    return put_rule


class Scheduler:
    """Fires scheduled EventBridge rules; ``clock`` is injectable so tests need not wait minutes."""

    def __init__(self, poll_interval: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.poll_interval = poll_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next_fire: dict[str, float] = {}
        self._loop = Periodic("scheduler", lambda: self.poll_interval, self._fire_due)
        self._patches = Patches()

    def start(self) -> None:
        self._patches.wrap(EventsBackend, "put_rule", _validated_put_rule)
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._patches.restore()

    def reset(self) -> None:
        with self._lock:
            self._next_fire.clear()

    def trigger(self, region: str, rule_name: str, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        """Fire one scheduled rule now, whatever its schedule says."""
        with SERVICE_LOCK.held():
            rule = events_backends[account_id][region].describe_rule(rule_name, None)
            if not rule.scheduled_expression:
                raise ScheduleError(f"Rule {rule_name} in {region} has no ScheduleExpression")
            self._fire(account_id, region, rule)

    def _fire_due(self) -> None:
        now = self._clock()
        with SERVICE_LOCK.held():
            scheduled = set()
            for account_id, region, backend in events_backends.iter_backends():
                bus = backend.event_buses.get("default")
                for rule in list(bus.rules.values()) if bus else []:
                    if not rule.scheduled_expression or rule.state != "ENABLED":
                        continue
                    scheduled.add(rule.arn)
                    period = rate_seconds(rule.scheduled_expression)
                    with self._lock:
                        due = self._next_fire.setdefault(rule.arn, now + period) <= now
                        if due:
                            self._next_fire[rule.arn] = now + period
                    if due:
                        self._fire_scheduled(account_id, region, rule)
            with self._lock:
                for forgotten in set(self._next_fire) - scheduled:
                    del self._next_fire[forgotten]

    def _fire_scheduled(self, account_id: str, region: str, rule: Rule) -> None:
        try:
            self._fire(account_id, region, rule)
        except NotImplementedError:
            # moto's own delivery knows no Lambda target; one such rule must not stop every schedule.
            LOG.error(
                "scheduled rule has a target moto cannot deliver; install iot_dr_local.cloudtrail",
                extra={"rule": rule.arn},
            )

    def _fire(self, account_id: str, region: str, rule: Rule) -> None:
        LOG.info("scheduled rule fired", extra={"rule": rule.arn})
        rule.send_to_targets(scheduled_event(account_id, region, rule.arn, self._clock()))
