"""Event types carried in the replication table and the worker family that applies each."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types_boto3_iot.literals import EventTypeType


class EventType(StrEnum):
    """The ``eventType`` of every item in the replication table: AWS IoT's registry event types
    (https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html) plus the ones the capture
    functions write (shadows, certificates, policies, attachments)."""

    THING = "THING_EVENT"
    THING_TYPE = "THING_TYPE_EVENT"
    THING_TYPE_ASSOCIATION = "THING_TYPE_ASSOCIATION_EVENT"
    THING_GROUP = "THING_GROUP_EVENT"
    THING_GROUP_MEMBERSHIP = "THING_GROUP_MEMBERSHIP_EVENT"
    THING_GROUP_HIERARCHY = "THING_GROUP_HIERARCHY_EVENT"
    SHADOW = "SHADOW_EVENT"
    CERTIFICATE = "CERTIFICATE_EVENT"
    POLICY = "POLICY_EVENT"
    THING_PRINCIPALS = "THING_PRINCIPALS_EVENT"
    POLICY_TARGETS = "POLICY_TARGETS_EVENT"


class Family(StrEnum):
    """The worker Lambda functions; the state machine routes each event type to one of them."""

    THINGS = "things"
    THING_TYPES = "thing-types"
    THING_GROUPS = "thing-groups"
    SHADOWS = "shadows"
    CERTIFICATES_POLICIES = "certificates-policies"


FAMILY_OF: dict[EventType, Family] = {
    EventType.THING: Family.THINGS,
    EventType.THING_TYPE_ASSOCIATION: Family.THINGS,
    EventType.THING_PRINCIPALS: Family.THINGS,
    EventType.THING_TYPE: Family.THING_TYPES,
    EventType.THING_GROUP: Family.THING_GROUPS,
    EventType.THING_GROUP_MEMBERSHIP: Family.THING_GROUPS,
    EventType.THING_GROUP_HIERARCHY: Family.THING_GROUPS,
    EventType.SHADOW: Family.SHADOWS,
    EventType.CERTIFICATE: Family.CERTIFICATES_POLICIES,
    EventType.POLICY: Family.CERTIFICATES_POLICIES,
    EventType.POLICY_TARGETS: Family.CERTIFICATES_POLICIES,
}

# The workflow's Task state that invokes each family's worker function; the template's Choice state must route
# every event type to WORKER_STATE[FAMILY_OF[event type]] (tests/test_templates.py checks it).
WORKER_STATE: dict[Family, str] = {
    Family.THINGS: "ThingCrud",
    Family.THING_TYPES: "ThingTypeCrud",
    Family.THING_GROUPS: "ThingGroupCrud",
    Family.SHADOWS: "ShadowSyncer",
    Family.CERTIFICATES_POLICIES: "CertificatePolicySync",
}

# The order of the waves in which one workflow execution applies its items: an item is applied after every item of
# the waves before it, so what it depends on (a type before things of that type, a thing and a certificate before
# their attachment) is usually there already and needs no retry. Out-of-order arrival across batches is still
# handled by the appliers (DependencyNotReady is retried).
APPLY_WAVE: dict[EventType, int] = {
    EventType.THING_TYPE: 0,
    EventType.THING: 1,
    EventType.THING_GROUP: 1,
    EventType.CERTIFICATE: 1,
    EventType.POLICY: 1,
    EventType.THING_TYPE_ASSOCIATION: 2,
    EventType.THING_GROUP_MEMBERSHIP: 2,
    EventType.THING_GROUP_HIERARCHY: 2,
    EventType.THING_PRINCIPALS: 2,
    EventType.POLICY_TARGETS: 2,
    EventType.SHADOW: 2,
}

# The registry event configurations replication needs enabled in the primary (UpdateEventConfigurations keys).
REGISTRY_EVENT_CONFIGURATIONS: tuple[EventTypeType, ...] = (
    "THING",
    "THING_TYPE",
    "THING_TYPE_ASSOCIATION",
    "THING_GROUP",
    "THING_GROUP_MEMBERSHIP",
    "THING_GROUP_HIERARCHY",
)
