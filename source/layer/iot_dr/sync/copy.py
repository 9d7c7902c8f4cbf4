"""Copy one device from the primary into the secondary with the replication's own writers (region-to-region).

A device is its thing (attributes, type), its static thing groups with their parents and policies, its
memberships, its certificates (same ID and status), their policies (every version, ARNs rewritten for the
secondary) and attachments (with the attachment type), and its classic and named shadows. Shared dependencies
(types, groups, policies) are written once per run however many devices need them (``Once``).

Every write converges: the writers compare with the secondary first, so copying a device again repairs what
drifted and changes nothing else. A device missing in the secondary is written without those comparisons where
the write itself tells (CreateThing, RegisterCertificateWithoutCA and CreatePolicy fail for an existing resource),
and what the copy has just created is known to have nothing attached: about 17 calls per device instead of 29.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iot_dr.core.items import now_ms
from iot_dr.fleet.device import shadow_state
from iot_dr.fleet.drift import Region
from iot_dr.primary.snapshots import certificate_snapshot, policy_snapshot, thing_principals
from iot_dr.secondary.ledger import Ledger, LedgerEntry
from iot_dr.secondary.replicate.certificates import register_new_certificate, write_certificate
from iot_dr.secondary.replicate.context import Secondary, certificate_id_of, describe_or_none, named_shadows, paginate
from iot_dr.secondary.replicate.policies import write_policy, write_policy_targets
from iot_dr.secondary.replicate.shadows import write_shadow
from iot_dr.secondary.replicate.thing_groups import write_thing_group
from iot_dr.secondary.replicate.thing_types import write_thing_type
from iot_dr.secondary.replicate.things import write_principals, write_thing

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient


class DeviceGone(Exception):
    """The thing was deleted in the primary between the enumeration and its copy."""


class NoHistory(Ledger):
    """The ledger a sync writes with: it records nothing, so a dependency missing in the secondary is reported as
    not ready (the device fails and a later run copies it) rather than as deleted since."""

    def __init__(self) -> None:  # no table: nothing is recorded
        pass

    def read(self, resource_key: str) -> LedgerEntry | None:
        """Always None: a sync keeps no ledger, so every state is applied."""
        return None


def secondary_context(secondary: Region, primary_region: str) -> Secondary:
    """The replication appliers' context for the secondary region, without a version ledger."""
    return Secondary(secondary.iot, secondary.iot_data, NoHistory(), secondary.name, primary_region)


class Once:
    """Runs each keyed action once per run, whichever thread asks first; the others wait for it. A failed action
    is not recorded, so the next device that needs it tries again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._done: set[str] = set()

    def ensure(self, key: str, action: Callable[[], None]) -> None:
        """Run ``action`` unless it already succeeded for ``key`` in this run; its exceptions propagate."""
        with self._lock:
            if key in self._done:
                return
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._done:
                return
            action()
            with self._lock:
                self._done.add(key)


def _thing_type_state(iot: IoTClient, name: str) -> dict[str, Any]:
    described = iot.describe_thing_type(thingTypeName=name)
    properties = described.get("thingTypeProperties") or {}
    return {
        "exists": True,
        "thingTypeName": name,
        "description": properties.get("thingTypeDescription") or None,
        "searchableAttributes": list(properties.get("searchableAttributes") or []),
        "deprecated": bool((described.get("thingTypeMetadata") or {}).get("deprecated")),
    }


class DeviceCopier:
    """Copies devices from ``primary`` into ``secondary``; one instance per run (it holds the run's ``Once``)."""

    def __init__(self, primary: Region, secondary: Region) -> None:
        self.primary = primary
        self.ctx = secondary_context(secondary, primary.name)
        self.once = Once()

    def _policy(self, name: str, new: bool) -> None:
        """``new``: the policy is expected to be missing in the secondary (see ``write_policy``'s create_first)."""
        self.once.ensure(
            f"policy#{name}", lambda: write_policy(self.ctx, policy_snapshot(self.primary.iot, name), create_first=new)
        )

    def _policy_targets(self, target_arn: str, policies: list[str], fresh: bool = False) -> None:
        """``fresh``: the target was just created in the secondary (see ``write_policy_targets``)."""
        for policy in policies:
            self._policy(policy, new=fresh)
        state = {"target": target_arn, "policies": sorted(policies), "capturedAt": now_ms()}
        write_policy_targets(self.ctx, state, fresh=fresh)

    def _group(self, name: str) -> None:
        def write() -> None:
            described = self.primary.iot.describe_thing_group(thingGroupName=name)
            parent = (described.get("thingGroupMetadata") or {}).get("parentGroupName")
            if parent:
                self._group(parent)
            properties = described.get("thingGroupProperties") or {}
            state = {
                "exists": True,
                "thingGroupName": name,
                "parentGroupName": parent,
                "description": properties.get("thingGroupDescription") or "",
                "attributes": dict((properties.get("attributePayload") or {}).get("attributes") or {}),
            }
            write_thing_group(self.ctx, state)
            arn = described["thingGroupArn"]
            policies = [
                p["policyName"] for p in paginate(self.primary.iot, "list_attached_policies", "policies", target=arn)
            ]
            self._policy_targets(arn, policies)

        self.once.ensure(f"thingGroup#{name}", write)

    def apply(self, name: str, existing: bool) -> None:
        """Make the device ``name`` in the secondary equal the primary's. ``existing``: the thing is already in the
        secondary, so what the primary lacks (memberships, shadows) is removed there too; otherwise the thing, its
        certificates and their policies are expected to be new and written create-first. Raises ``DeviceGone``, or
        the ClientError of the first call that fails (a thing deleted in the primary meanwhile gives
        ``ResourceNotFoundException``)."""
        primary = self.primary
        thing = describe_or_none(primary.iot.describe_thing, thingName=name)
        if thing is None:
            raise DeviceGone(f"thing {name} no longer exists in {primary.name}")
        type_name = thing.get("thingTypeName") or None
        if type_name:
            self.once.ensure(
                f"thingType#{type_name}", lambda: write_thing_type(self.ctx, _thing_type_state(primary.iot, type_name))
            )
        write_thing(
            self.ctx,
            {
                "exists": True,
                "thingName": name,
                "thingTypeName": type_name,
                "attributes": thing.get("attributes") or {},
            },
            create_first=not existing,
        )
        self._memberships(name, existing)
        self._certificates(name, existing)
        self._shadows(name, existing)

    def _memberships(self, name: str, existing: bool) -> None:
        groups = {
            g["groupName"]
            for g in paginate(self.primary.iot, "list_thing_groups_for_thing", "thingGroups", thingName=name)
        }
        for group in sorted(groups):
            self._group(group)
            # The thing and the group were both written by this run: the membership needs no presence checks.
            self.ctx.iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)
        if existing:
            for extra in paginate(self.ctx.iot, "list_thing_groups_for_thing", "thingGroups", thingName=name):
                if extra["groupName"] not in groups:
                    self.ctx.iot.remove_thing_from_thing_group(thingGroupName=extra["groupName"], thingName=name)

    def _certificates(self, name: str, existing: bool) -> None:
        captured_at = now_ms()
        attachments = thing_principals(self.primary.iot, name)
        for attachment in attachments:
            arn = attachment["principal"]
            certificate = certificate_snapshot(self.primary.iot, str(certificate_id_of(arn)))
            if not certificate["exists"]:
                continue
            registered = not existing and register_new_certificate(self.ctx, certificate)
            if not registered:
                write_certificate(self.ctx, certificate)
            policies = [
                p["policyName"] for p in paginate(self.primary.iot, "list_attached_policies", "policies", target=arn)
            ]
            self._policy_targets(arn, policies, fresh=registered)
        write_principals(
            self.ctx,
            {
                "thingName": name,
                "exists": True,
                "principals": {a["principal"]: a["thingPrincipalType"] for a in attachments},
                "capturedAt": captured_at,
            },
            fresh=not existing,
        )

    def _shadows(self, name: str, existing: bool) -> None:
        wanted: set[str | None] = {None, *named_shadows(self.primary.iot_data, name)}
        for shadow in sorted(wanted, key=lambda s: s or ""):
            state = shadow_state(self.primary.iot_data, name, shadow)
            if state is not None:
                write_shadow(
                    self.ctx,
                    {"thingName": name, "shadowName": shadow, "exists": True, "state": state, "receivedAt": now_ms()},
                )
            elif existing:
                write_shadow(self.ctx, {"thingName": name, "shadowName": shadow, "exists": False})
        if existing:
            for extra in set(named_shadows(self.ctx.iot_data, name)) - wanted:
                write_shadow(self.ctx, {"thingName": name, "shadowName": extra, "exists": False})
