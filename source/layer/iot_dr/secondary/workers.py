"""The entry point of every worker Lambda: validate the workflow input and run the matching applier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from iot_dr.core import aws, metrics
from iot_dr.core.errors import MalformedEvent, TransientReplicationError
from iot_dr.core.event_types import FAMILY_OF, EventType, Family
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import WorkerSettings
from iot_dr.secondary.ledger import Ledger, Outcome
from iot_dr.secondary.replicate import certificates, policies, shadows, thing_groups, thing_types, things
from iot_dr.secondary.replicate.context import Secondary

LOG = logging.getLogger(__name__)

Applier = Callable[[Secondary, dict[str, Any]], Outcome]

APPLIERS: dict[EventType, Applier] = {
    EventType.THING: things.apply_thing_event,
    EventType.THING_TYPE_ASSOCIATION: things.apply_type_association,
    EventType.THING_PRINCIPALS: things.apply_thing_principals,
    EventType.THING_TYPE: thing_types.apply_thing_type_event,
    EventType.THING_GROUP: thing_groups.apply_thing_group_event,
    EventType.THING_GROUP_MEMBERSHIP: thing_groups.apply_membership_event,
    EventType.THING_GROUP_HIERARCHY: thing_groups.apply_hierarchy_event,
    EventType.SHADOW: shadows.apply_shadow_event,
    EventType.CERTIFICATE: certificates.apply_certificate_event,
    EventType.POLICY: policies.apply_policy_event,
    EventType.POLICY_TARGETS: policies.apply_policy_targets_event,
}


def secondary_context(settings: WorkerSettings) -> Secondary:
    """The secondary's clients and ledger for one invocation, from the worker's settings."""
    return Secondary(
        iot=aws.client("iot", settings.region),
        iot_data=aws.client("iot-data", settings.region),
        ledger=Ledger(aws.client("dynamodb", settings.region), settings.state_table, settings.ledger_retention_seconds),
        region=settings.region,
        primary_region=settings.primary_region,
    )


def parse_input(workflow_input: Any) -> tuple[EventType, dict[str, Any]]:
    """The workflow input is ``{"eventType": ..., "event": {...}, "record": {...}}`` (see trigger)."""
    if not isinstance(workflow_input, dict) or not isinstance(workflow_input.get("event"), dict):
        raise MalformedEvent("workflow input must be an object with an 'event' object")
    try:
        event_type = EventType(workflow_input.get("eventType", ""))
    except ValueError as err:
        raise MalformedEvent(f"unknown eventType {workflow_input.get('eventType')!r}") from err
    return event_type, workflow_input["event"]


def apply_event(ctx: Secondary, family: Family, workflow_input: Any, state_table: str | None = None) -> dict[str, str]:
    """Apply one workflow input with the applier of its event type; returns ``{"eventType", "outcome"}``; with
    ``state_table``, the event's replication lag is written as the ``ReplicationLag`` metric (milliseconds, EMF) once
    it is handled (applied or superseded).

    Raises ``MalformedEvent`` for an input of another family or a bad event, ``TransientReplicationError`` for an
    AWS error worth retrying (``aws.is_transient``), and the applier's own ``ReplicationError``s; the state
    machine retries or parks each by its name."""
    event_type, event = parse_input(workflow_input)
    if FAMILY_OF[event_type] != family:
        raise MalformedEvent(f"{event_type} was routed to the {family} worker")
    try:
        outcome = APPLIERS[event_type](ctx, event)
    except Exception as err:
        if aws.is_transient(err):
            # Throttling or an outage that outlasted the SDK's retries: the workflow retries with backoff.
            raise TransientReplicationError(f"{type(err).__name__}: {err}") from err
        raise
    LOG.info("event handled", extra={"eventType": str(event_type), "outcome": str(outcome)})
    if state_table is not None:
        metrics.replication_lag(state_table, event)
    return {"eventType": str(event_type), "outcome": str(outcome)}


def worker_handler(family: Family) -> Callable[[Any, Any], dict[str, str]]:
    """The Lambda handler of one worker family; settings are read per invocation, never at import."""

    # The correlation id is the replication item's key (its uuid), the same for every retry of the item.
    @lambda_entry(correlation_id_path="event.uuid")
    def handler(event: Any, context: Any) -> dict[str, str]:
        settings = WorkerSettings.from_env()
        return apply_event(secondary_context(settings), family, event, settings.state_table)

    return handler
