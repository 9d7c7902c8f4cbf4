"""CloudFormation custom resources that answer CloudFormation exactly once, whatever happens.

A custom resource that never answers leaves its stack waiting for an hour; one that answers twice is undefined
behaviour. ``run`` therefore sends SUCCESS with the handler's outcome, FAILED with the handler's error, or FAILED
shortly before the Lambda function times out, and only the first of these ever leaves the function. It returns
normally after a failure: CloudFormation invokes custom resources asynchronously, and a raised error would make Lambda
retry the invocation and answer again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from iot_dr.core.errors import MalformedEvent

LOG = logging.getLogger(__name__)

_TIMEOUT_MARGIN_SECONDS = 5.0
_MAX_REASON = 1000


class LambdaContext(Protocol):
    """The part of the Lambda context object the custom resource uses
    (https://docs.aws.amazon.com/lambda/latest/dg/python-context.html)."""

    log_stream_name: str

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""


@dataclass(frozen=True)
class Outcome:
    """What a successful operation reports; ``data`` must never hold a secret (it is visible in the stack)."""

    physical_resource_id: str
    data: Mapping[str, str] = field(default_factory=dict)


Operation = Callable[[Mapping[str, Any]], Outcome]
Sender = Callable[[str, bytes], None]


_REQUEST_FIELDS = ("RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId")


def require_request(event: Any) -> None:
    """Raise MalformedEvent unless ``event`` is a CloudFormation custom resource request: without its response URL
    and ids nothing can be answered, so the reason goes to the function's log and error metrics instead."""
    if not isinstance(event, Mapping) or not all(isinstance(event.get(name), str) for name in _REQUEST_FIELDS):
        raise MalformedEvent(f"not a CloudFormation custom resource request (needs {', '.join(_REQUEST_FIELDS)})")
    if not isinstance(event.get("ResourceProperties", {}), Mapping):
        raise MalformedEvent("ResourceProperties is not an object")


def put_response(url: str, body: bytes) -> None:
    """PUT the response to CloudFormation's pre-signed S3 URL, retrying transient network failures."""
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    for attempt in range(1, 4):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            return
        except urllib.error.URLError as err:
            if attempt == 3:
                raise
            LOG.warning("response upload failed, retrying", extra={"attempt": attempt, "error": str(err)})
            time.sleep(attempt)


class _Responder:
    """Sends at most one response; later attempts are logged and dropped."""

    def __init__(self, event: Mapping[str, Any], context: LambdaContext, send: Sender) -> None:
        self._event = event
        self._context = context
        self._send = send
        self._lock = threading.Lock()
        self._sent = False

    def respond(self, status: str, physical_id: str, reason: str = "", data: Mapping[str, str] | None = None) -> bool:
        with self._lock:
            if self._sent:
                LOG.warning("custom resource already answered", extra={"status": status})
                return False
            self._sent = True
        body = {
            "Status": status,
            "Reason": (reason or f"See CloudWatch log stream {self._context.log_stream_name}")[:_MAX_REASON],
            "PhysicalResourceId": physical_id,
            "StackId": self._event["StackId"],
            "RequestId": self._event["RequestId"],
            "LogicalResourceId": self._event["LogicalResourceId"],
            "NoEcho": False,
            "Data": dict(data or {}),
        }
        self._send(self._event["ResponseURL"], json.dumps(body).encode())
        LOG.info(
            "custom resource answered",
            extra={"status": status, "physical_resource_id": physical_id, "request_type": self._event["RequestType"]},
        )
        return True


def run(
    event: Mapping[str, Any],
    context: LambdaContext,
    *,
    create: Operation,
    update: Operation,
    delete: Operation,
    physical_id_on_failure: Callable[[Mapping[str, Any]], str],
    send: Sender = put_response,
) -> None:
    """Run the operation for ``event["RequestType"]`` and answer CloudFormation exactly once.

    ``physical_id_on_failure`` names the resource when a Create fails: CloudFormation then sends a Delete with that
    id, so it must let ``delete`` find (and remove) whatever the failed Create left behind.
    """
    responder = _Responder(event, context, send)
    physical_id = str(event.get("PhysicalResourceId") or physical_id_on_failure(event))
    seconds_left = context.get_remaining_time_in_millis() / 1000 - _TIMEOUT_MARGIN_SECONDS
    watchdog = threading.Timer(
        max(0.0, seconds_left), responder.respond, args=("FAILED", physical_id, "Timed out before finishing")
    )
    watchdog.daemon = True
    watchdog.start()
    operations = {"Create": create, "Update": update, "Delete": delete}
    try:
        outcome = operations[event["RequestType"]](event)
    except Exception as err:  # every failure must reach CloudFormation, or the stack hangs; it is logged in full
        LOG.exception("custom resource failed", extra={"request_type": event.get("RequestType")})
        responder.respond("FAILED", physical_id, f"{type(err).__name__}: {err}")
    else:
        responder.respond("SUCCESS", outcome.physical_resource_id, data=outcome.data)
    finally:
        watchdog.cancel()
