"""ARN parsing and the region rewrite of IoT policy documents.

Policies copied to the secondary must point at the secondary's resources. Only the region field of ARNs that
name the primary region is changed; topic names, client IDs or conditions that merely contain the region's
name are left alone (the archived solution replaced every occurrence of the string).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Arn:
    """An ARN split into its six fields, ``arn:partition:service:region:account:resource``
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html). ``str()`` joins them again."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn:
        """Split ``text``; raises ValueError when it is not ``arn:`` followed by five colon-separated fields with a
        partition and a service."""
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or not parts[1] or not parts[2]:
            raise ValueError(f"not an ARN: {text!r}")
        return cls(parts[1], parts[2], parts[3], parts[4], parts[5])

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"

    @property
    def resource_type(self) -> str:
        """The part of ``resource`` before the first ``/`` (``thing`` in ``thing/sensor-1``; all of it without
        a ``/``)."""
        return self.resource.split("/", 1)[0]

    @property
    def resource_id(self) -> str:
        """The part of ``resource`` after the first ``/`` (``sensor-1`` in ``thing/sensor-1``); empty
        without a ``/``."""
        return self.resource.split("/", 1)[1] if "/" in self.resource else ""


def is_arn(text: str) -> bool:
    """Whether ``text`` parses as an ARN (see ``Arn.parse``); never raises."""
    try:
        Arn.parse(text)
    except ValueError:
        return False
    return True


def rewrite_region(text: str, source_region: str, target_region: str) -> str:
    """``text`` with its region replaced if it is an ARN in ``source_region``; anything else unchanged."""
    if not is_arn(text):
        return text
    arn = Arn.parse(text)
    if arn.region != source_region:
        return text
    return str(replace(arn, region=target_region))


def _rewrite_value(value: Any, source_region: str, target_region: str) -> Any:
    if isinstance(value, str):
        return rewrite_region(value, source_region, target_region)
    if isinstance(value, list):
        return [_rewrite_value(v, source_region, target_region) for v in value]
    return value


def _rewrite_condition(condition: Any, source_region: str, target_region: str) -> Any:
    if not isinstance(condition, dict):
        return condition
    return {
        operator: {key: _rewrite_value(values, source_region, target_region) for key, values in keys.items()}
        if isinstance(keys, dict)
        else keys
        for operator, keys in condition.items()
    }


def rewrite_policy_document(document: str, source_region: str, target_region: str) -> str:
    """Rewrite the ARNs in ``Resource``, ``NotResource`` and ``Condition`` values of an IoT policy document."""
    parsed = json.loads(document)
    statements = parsed.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        for field in ("Resource", "NotResource"):
            if field in statement:
                statement[field] = _rewrite_value(statement[field], source_region, target_region)
        if "Condition" in statement:
            statement["Condition"] = _rewrite_condition(statement["Condition"], source_region, target_region)
    return json.dumps(parsed, sort_keys=True)
