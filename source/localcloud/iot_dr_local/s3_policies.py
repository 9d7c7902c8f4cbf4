"""Bucket policies evaluated with their conditions.

moto ignores the outcome of a statement's Condition in one direction: a Deny whose condition does not hold
still denies. The solution's artifact buckets carry the usual "deny unless aws:SecureTransport" statement,
which would then lock everyone out. Here a statement applies only when its conditions hold, and the
loopback transport of the local cloud counts as secure: it stands in for AWS's TLS endpoints.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any

from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.s3.models import FakeBucket

from iot_dr_local.patching import Patches

REQUEST_CONTEXT = {"aws:SecureTransport": "true"}

_patches = Patches()


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


_OPERATORS: dict[str, Callable[[str, list[str]], bool]] = {
    "Bool": lambda actual, expected: actual.lower() in (e.lower() for e in expected),
    "StringEquals": lambda actual, expected: actual in expected,
    "StringNotEquals": lambda actual, expected: actual not in expected,
    "StringLike": lambda actual, expected: any(fnmatch.fnmatchcase(actual, e) for e in expected),
    "StringNotLike": lambda actual, expected: not any(fnmatch.fnmatchcase(actual, e) for e in expected),
}


def conditions_hold(condition: dict[str, Any]) -> bool:
    """IAM condition semantics for the operators bucket policies here use; a missing context key fails."""
    for operator, keys in condition.items():
        if operator not in _OPERATORS:
            raise ValueError(f"condition operator {operator} is not supported by the local cloud")
        for key, expected in keys.items():
            actual = REQUEST_CONTEXT.get(key)
            if actual is None or not _OPERATORS[operator](actual, _as_list(expected)):
                return False
    return True


def bucket_permission(policy_text: str, action: str, resource: str) -> PermissionResult:
    permitted = False
    for statement in _statements(json.loads(policy_text)):
        if not conditions_hold(statement.get("Condition") or {}):
            continue
        unconditional = {k: v for k, v in statement.items() if k != "Condition"}
        result = IAMPolicyStatement(unconditional).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return result
        permitted = permitted or result == PermissionResult.PERMITTED
    return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL


def _get_permission(bucket: FakeBucket, action: str, resource: str) -> PermissionResult:
    if bucket.policy is None:
        return PermissionResult.NEUTRAL
    policy = bucket.policy.decode() if isinstance(bucket.policy, bytes) else bucket.policy
    return bucket_permission(policy, action, resource)


def install() -> None:
    if not _patches.applied:
        _patches.set(FakeBucket, "get_permission", _get_permission)


def uninstall() -> None:
    _patches.restore()
