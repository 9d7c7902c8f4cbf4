"""CloudTrail "AWS API Call via CloudTrail" events for IoT write calls, delivered by EventBridge rules.

AWS IoT publishes no registry event for certificates, policies or principal attachments; the solution
learns about them from CloudTrail through EventBridge. Here every successful IoT call that is not
read-only, in a region with a logging CloudTrail trail (a multi-region trail covers every region), becomes
the EventBridge event AWS would send to that region's default event bus, as CloudTrail records every
management write call; which of them reach a function is up to the rules' event patterns, as on AWS. The
bus's enabled rules are matched with moto's own pattern matching, and Lambda and SQS targets are
delivered from the dispatcher with retries, then to the target's dead-letter queue. moto's PutEvents goes
through the same delivery, which gives it Lambda targets (moto raises NotImplementedError for them).

Events never carry a private key: ``keyPair``, ``privateKey`` and ``certificatePem`` are left out of
``responseElements``.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto.cloudtrail.models import Trail, cloudtrail_backends
from moto.events.models import Rule, events_backends
from moto.iot.responses import IoTResponse
from moto.utilities.arns import parse_arn

from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.patching import Patches
from iot_dr_local.rules_engine import SERVICE_ERRORS, describe_error

LOG = logging.getLogger(__name__)

# IoT actions that read and change nothing: CloudTrail marks them readOnly; the local cloud records only writes.
_READ_ONLY_ACTION = re.compile(r"(Describe|Get|List|Search|Test|Validate)[A-Z]")

DETAIL_TYPE = "AWS API Call via CloudTrail"
EVENT_VERSION = "1.08"
SECRET_RESPONSE_FIELDS = frozenset({"keyPair", "privateKey", "certificatePem"})
# EventBridge retries for up to 24 hours; locally a failing target reaches its dead-letter queue quickly.
DEFAULT_RETRY_DELAYS = (0.05, 0.1)


class DeliveryError(Exception):
    """A target cannot be delivered to by the local cloud."""


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _logs_write_calls(trail: Trail) -> bool:
    """Whether the trail's basic event selectors let management write events through."""
    if not trail.status.is_logging:
        return False
    if not trail.event_selectors:
        return True
    return any(
        selector.get("IncludeManagementEvents", True) and selector.get("ReadWriteType", "All") in ("All", "WriteOnly")
        for selector in trail.event_selectors
    )


def read_only(action: str) -> bool:
    """Whether CloudTrail records the IoT ``action`` as read-only (``readOnly: true``), judged by its name."""
    return _READ_ONLY_ACTION.match(action) is not None


def trail_records(account_id: str, region: str) -> bool:
    """True when a logging trail of the account covers ``region``."""
    for backend in cloudtrail_backends[account_id].values():
        for trail in backend.trails.values():
            if (trail.is_multi_region or trail.region_name == region) and _logs_write_calls(trail):
                return True
    return False


def api_call_event(response: IoTResponse, action: str, headers: dict[str, Any], body: Any) -> dict[str, Any]:
    """The EventBridge event for one successful IoT call, with its CloudTrail record as ``detail``."""
    response.parse_parameters(response.normalized_request)
    elements = json.loads(body) if body else {}
    elements = {key: value for key, value in elements.items() if key not in SECRET_RESPONSE_FIELDS}
    account_id, region = response.current_account, response.region
    now = _iso(datetime.datetime.now(datetime.UTC))
    request = response.normalized_request
    record = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {
            "type": "IAMUser",
            "principalId": response.access_key,
            "arn": f"arn:aws:iam::{account_id}:user/moto",
            "accountId": account_id,
            "accessKeyId": response.access_key,
            "userName": "moto",
        },
        "eventTime": now,
        "eventSource": "iot.amazonaws.com",
        "eventName": action,
        "awsRegion": region,
        "sourceIPAddress": request.remote_addr or "127.0.0.1",
        "userAgent": request.headers.get("User-Agent", ""),
        "requestParameters": dict(response.params) or None,
        "responseElements": elements or None,
        "requestID": headers.get("x-amzn-requestid") or str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.iot",
        "account": account_id,
        "time": now,
        "region": region,
        "resources": [],
        "detail": record,
    }


def _as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a target receives it: ISO ``time`` (moto keeps epoch seconds), no moto-only keys."""
    delivered = copy.deepcopy(event)
    delivered.pop("ingestion-time", None)
    if isinstance(delivered.get("time"), int | float):
        delivered["time"] = _iso(datetime.datetime.fromtimestamp(delivered["time"], datetime.UTC))
    return delivered


def _rule_matches(rule: Rule, event: dict[str, Any]) -> bool:
    """Pattern rules match by pattern; a schedule-only rule matches only its own events, which name it."""
    if rule.state != "ENABLED":
        return False
    if rule.event_pattern.get_pattern():
        return bool(rule.event_pattern.matches_event(event))
    return rule.arn in event.get("resources", [])


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target or "InputTransformer" in target:
        raise DeliveryError("InputPath and InputTransformer are not supported by the local cloud")
    return event


def _send(target: dict[str, Any], payload: Any) -> None:
    from iot_dr_local.lambda_runtime import invoke_function, send_to_queue

    arn = parse_arn(target["Arn"])
    if arn.service == "lambda":
        invoke_function(arn.account, arn.region, target["Arn"], payload, asynchronous=True)
    else:
        send_to_queue(target["Arn"], json.dumps(payload))


class CloudTrailEvents:
    """Installed CloudTrail events and EventBridge delivery; ``uninstall`` gives moto its code back."""

    def __init__(self, dispatcher: Dispatcher, retry_delays: tuple[float, ...]) -> None:
        self._dispatcher = dispatcher
        self._retry_delays = retry_delays
        self._patches = Patches()
        self._lock = threading.Lock()
        self._in_flight = 0

    def install(self) -> None:
        # IoTResponse inherits call_action; wrapping the inherited one as it is now would keep later-removed
        # wrappers of BaseResponse.call_action (quota emulation, faults) in IoT's path: look it up at each call.
        self._patches.set(IoTResponse, "call_action", self._record_calls(_inherited_call_action))
        self._patches.wrap(Rule, "send_to_targets", self._deliver_targets)
        self._dispatcher.add_busy_probe(self.busy)

    def uninstall(self) -> None:
        global _installed
        self._patches.restore()
        _installed = None

    def busy(self) -> bool:
        with self._lock:
            return self._in_flight > 0

    # ------------------------------------------------------------------------------- CloudTrail

    def _record_calls(self, original: Callable[..., Any]) -> Callable[..., Any]:
        events = self

        @functools.wraps(original)
        def call_action(response: IoTResponse) -> Any:
            status, headers, body = original(response)
            if status >= 300:
                return status, headers, body
            action = response._get_action()
            if not read_only(action) and trail_records(response.current_account, response.region):
                event = api_call_event(response, action, headers, body)
                events._track(1)
                events._dispatcher.submit(events._put_on_default_bus, event)
            return status, headers, body

        return call_action

    def _put_on_default_bus(self, event: dict[str, Any]) -> None:
        try:
            with SERVICE_LOCK.held():
                bus = events_backends[event["account"]][event["region"]].event_buses["default"]
                for rule in list(bus.rules.values()):
                    rule.send_to_targets(event)
        finally:
            self._track(-1)

    # ------------------------------------------------------------------------------ EventBridge

    def _deliver_targets(self, original: Callable[..., None]) -> Callable[..., None]:
        events = self

        @functools.wraps(original)
        def send_to_targets(rule: Rule, event: dict[str, Any], transform_input: bool = True) -> None:
            if not _rule_matches(rule, event):
                return
            others = []
            for target in rule.targets:
                if parse_arn(target["Arn"]).service in ("lambda", "sqs"):
                    events._track(1)
                    events._dispatcher.submit(events._deliver, rule.arn, copy.deepcopy(target), _as_delivered(event))
                else:
                    others.append(target)
            if others:
                narrowed = copy.copy(rule)
                narrowed.targets = others
                original(narrowed, event, transform_input)

        return send_to_targets

    def _deliver(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        try:
            retries = target.get("RetryPolicy", {}).get("MaximumRetryAttempts", len(self._retry_delays))
            delays = (0.0, *self._retry_delays[:retries])
            for attempt, delay in enumerate(delays, start=1):
                time.sleep(delay)
                try:
                    _send(target, _target_input(target, event))
                    return
                except (DeliveryError, *SERVICE_ERRORS) as err:
                    if attempt == len(delays):
                        self._dead_letter(rule_arn, target, event, err)
        finally:
            self._track(-1)

    @staticmethod
    def _dead_letter(rule_arn: str, target: dict[str, Any], event: dict[str, Any], error: Exception) -> None:
        from iot_dr_local.lambda_runtime import send_to_queue

        code, message = describe_error(error)
        LOG.warning("EventBridge target failed after retries", extra={"target": target["Arn"], "error": message})
        queue = target.get("DeadLetterConfig", {}).get("Arn")
        if queue is None:
            return
        attributes = {"RULE_ARN": rule_arn, "TARGET_ARN": target["Arn"], "ERROR_CODE": code, "ERROR_MESSAGE": message}
        send_to_queue(queue, json.dumps(event), attributes)

    def _track(self, change: int) -> None:
        with self._lock:
            self._in_flight += change


def _inherited_call_action(response: IoTResponse) -> Any:
    return super(IoTResponse, response).call_action()


_installed: CloudTrailEvents | None = None


def install(dispatcher: Dispatcher, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS) -> CloudTrailEvents:
    """Publish CloudTrail events for IoT write calls and deliver EventBridge Lambda and SQS targets."""
    global _installed
    if _installed is not None:
        raise RuntimeError("cloudtrail is already installed; uninstall() it first")
    events = CloudTrailEvents(dispatcher, retry_delays)
    events.install()
    _installed = events
    return events
