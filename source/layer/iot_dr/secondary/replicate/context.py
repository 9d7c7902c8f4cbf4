"""What every applier needs: the secondary's clients, the ledger, and a few shared checks."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iot_dr.core.aws import error_code
from iot_dr.core.errors import MalformedEvent
from iot_dr.secondary.ledger import Ledger, order_parts

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient
    from types_boto3_iot_data import IoTDataPlaneClient
    from types_boto3_iot_data.type_defs import ListNamedShadowsForThingRequestTypeDef

NOT_FOUND = "ResourceNotFoundException"
# Registry events of one resource in the same millisecond and version: creation before update before deletion.
OPERATION_RANK = {"CREATED": 0, "UPDATED": 1, "DELETED": 2}


@dataclass(frozen=True)
class Secondary:
    """Clients of the region being written (the secondary) and where the events came from."""

    iot: IoTClient
    iot_data: IoTDataPlaneClient
    ledger: Ledger
    region: str
    primary_region: str


def thing_key(name: str) -> str:
    """The ledger key of a thing; other resources check it to tell "not replicated yet" from "deleted"."""
    return f"thing#{name}"


def require(event: dict[str, Any], field: str) -> Any:
    """A field the event cannot do without; its absence makes the event malformed, not retryable."""
    value = event.get(field)
    if value is None or value == "":
        raise MalformedEvent(f"event has no {field!r}: keys are {sorted(event)}")
    return value


def require_operation(event: dict[str, Any], known: Container[str]) -> str:
    """The event's ``operation``, which must be one of ``known``."""
    operation = str(require(event, "operation"))
    if operation not in known:
        raise MalformedEvent(f"unknown {event.get('eventType', 'event')} operation {operation!r}")
    return operation


def require_int(event: dict[str, Any], field: str) -> int:
    """``event[field]`` as an int; raises ``MalformedEvent`` when it is missing or not an integer."""
    value = require(event, field)
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise MalformedEvent(f"event field {field!r} is not an integer: {value!r}") from err


def is_not_found(err: BaseException) -> bool:
    """Whether ``err`` is AWS IoT's ResourceNotFoundException (https://docs.aws.amazon.com/iot/latest/apireference/CommonErrors.html)."""
    return error_code(err) == NOT_FOUND


def describe_or_none(call: Any, **kwargs: Any) -> dict[str, Any] | None:
    """The response of a describe/get call, or None when the resource does not exist."""
    try:
        return dict(call(**kwargs))
    except Exception as err:
        if is_not_found(err):
            return None
        raise


def ignore_not_found(call: Any, **kwargs: Any) -> None:
    """Run a delete/detach call; a resource that is already gone is the desired outcome."""
    try:
        call(**kwargs)
    except Exception as err:
        if not is_not_found(err):
            raise


def paginate(client: Any, operation: str, result_key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item under ``result_key`` of each page of boto3's paginator for ``operation``."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(result_key, [])


def named_shadows(iot_data: IoTDataPlaneClient, thing: str) -> Iterator[str]:
    """Names of a thing's named shadows (ListNamedShadowsForThing has no boto3 paginator)."""
    token = None
    while True:
        request: ListNamedShadowsForThingRequestTypeDef = {"thingName": thing}
        if token:
            request["nextToken"] = token
        page = iot_data.list_named_shadows_for_thing(**request)
        yield from page.get("results", [])
        token = page.get("nextToken")
        if not token:
            return


def deleted_since(ledger: Ledger, resource_key: str, timestamp_ms: int) -> bool:
    """True if the ledger records the resource as deleted by an event at or after ``timestamp_ms``.

    Lets an applier tell "dependency not replicated yet" (retry) from "dependency deleted later" (stale).
    """
    entry = ledger.read(resource_key)
    if entry is None or entry.state.get("exists", entry.state.get("member", True)):
        return False
    return order_parts(entry.order_key)[0] >= timestamp_ms


def certificate_id_of(principal_arn: str) -> str | None:
    """The certificate ID of a certificate principal ARN; None for other principals (e.g. Cognito)."""
    marker = ":cert/"
    return principal_arn.split(marker, 1)[1] if marker in principal_arn else None
