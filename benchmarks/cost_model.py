"""Prices, the guide's examples and the original design's per-event counts, for ``replication_cost.py``.

Every price is a us-east-1 list price, named with its source page; re-check them before quoting a figure.
The original design's counts come from its templates and code (docs/cost.md explains each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# https://aws.amazon.com/step-functions/pricing/
SFN_STANDARD_PER_TRANSITION = 0.025 / 1000
SFN_EXPRESS_PER_REQUEST = 1.00 / 1_000_000
SFN_EXPRESS_PER_GB_SECOND = 0.00001667
SFN_EXPRESS_MIN_MEMORY_GB = 64 / 1024
# https://aws.amazon.com/lambda/pricing/ (x86)
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000166667
# https://aws.amazon.com/dynamodb/pricing/on-demand/
DYNAMODB_PER_WRITE_UNIT = 0.625 / 1_000_000  # replicated writes to a global table replica cost the same
DYNAMODB_PER_READ_UNIT = 0.125 / 1_000_000
# https://aws.amazon.com/iot-core/pricing/
IOT_RULES_PER_TRIGGER = 0.15 / 1_000_000
IOT_RULES_PER_ACTION = 0.15 / 1_000_000
IOT_REGISTRY_OR_SHADOW_PER_OPERATION = 1.25 / 1_000_000
# https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer_within_the_same_AWS_Region (between regions)
TRANSFER_BETWEEN_REGIONS_PER_GB = 0.02

# The implementation guide's cost examples (devices created and shadow updates per month).
EXAMPLES = {"Example 1": (72_000, 150_000), "Example 2": (7_200_000, 40_000_000)}

# AWS IoT Core default quotas in requests per second per account and region, as collected in the project's
# reference notes (Service Quotas snapshot and https://docs.aws.amazon.com/general/latest/gr/iot-core.html; verify
# in your account's Service Quotas console). Operations missing here are not limiting (DescribeThing 350/s,
# shadow operations 4,000/s in most regions).
IOT_QUOTAS_PER_SECOND = {
    "create_thing": 100,
    "update_thing": 100,
    "attach_thing_principal": 100,
    "register_certificate_without_ca": 10,
    "attach_policy": 15,
    "get_policy": 10,
    "describe_certificate": 10,
    "list_thing_principals": 10,
    "list_thing_principals_v2": 10,
    "list_attached_policies": 10,
    "describe_thing": 350,
}


@dataclass(frozen=True)
class Usage:
    """What replicating one event costs in billable units."""

    items: float = 0.0
    item_write_units: float = 0.0  # per region the item is written to (the primary and each replica)
    item_bytes: float = 0.0
    ledger_write_units: float = 0.0
    ledger_read_units: float = 0.0
    standard_transitions: float = 0.0
    express_requests: float = 0.0
    express_gb_seconds: float = 0.0
    lambda_invocations: float = 0.0
    lambda_gb_seconds: float = 0.0
    rule_triggers: float = 0.0
    rule_actions: float = 0.0
    iot_operations: float = 0.0


def monthly_cost(usage: Usage, events: int) -> dict[str, float]:
    """Dollars per month, per service, for ``events`` events of this ``usage``."""
    costs = {
        "DynamoDB": (2 * usage.item_write_units + usage.ledger_write_units) * DYNAMODB_PER_WRITE_UNIT
        + usage.ledger_read_units * DYNAMODB_PER_READ_UNIT,
        "Step Functions": usage.standard_transitions * SFN_STANDARD_PER_TRANSITION
        + usage.express_requests * SFN_EXPRESS_PER_REQUEST
        + usage.express_gb_seconds * SFN_EXPRESS_PER_GB_SECOND,
        "Lambda": usage.lambda_invocations * LAMBDA_PER_REQUEST + usage.lambda_gb_seconds * LAMBDA_PER_GB_SECOND,
        "IoT Core": usage.rule_triggers * IOT_RULES_PER_TRIGGER
        + usage.rule_actions * IOT_RULES_PER_ACTION
        + usage.iot_operations * IOT_REGISTRY_OR_SHADOW_PER_OPERATION,
        "Data transfer": usage.item_bytes / 1e9 * TRANSFER_BETWEEN_REGIONS_PER_GB,
    }
    return {service: cost * events for service, cost in costs.items()}


def write_units(item_bytes: float) -> float:
    """On-demand write request units of one item (1 KB each, rounded up)."""
    return float(max(1, math.ceil(item_bytes / 1024)))


# The original design, per new device (thing, certificate, policy attachment, principal attachment and one
# shadow update) and per further shadow update; see docs/cost.md.
ORIGINAL_PER_DEVICE = Usage(
    items=2,
    item_write_units=2,
    item_bytes=2 * 1200,
    standard_transitions=2 * 2,  # each execution enters Choice and Task
    lambda_invocations=4,
    lambda_gb_seconds=8 * 0.125 + 4 * 0.2 * 0.125,  # the fixed sleeps in ThingCrud, plus ~200 ms per invocation
    rule_triggers=2 + 4,  # the registry rule, and the shadow rule on every shadow message of the update
    rule_actions=2,
    iot_operations=5 + 8,
)
ORIGINAL_PER_SHADOW_UPDATE = Usage(
    items=1,
    item_write_units=1,
    item_bytes=800,
    standard_transitions=2,
    lambda_invocations=2,
    lambda_gb_seconds=2 * 0.2 * 0.125,
    rule_triggers=4,
    rule_actions=1,
    iot_operations=1,
)
