"""A deployment of the solution to drill against, found as the operator tools find it: the primary and secondary
stacks by their outputs (or by the guide's names with ``--stack-postfix``), the primary's health check from its
health-checker stack, and the failover record whose PRIMARY answer uses that health check from Route 53."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iot_dr.deploy.uninstall import Deployment
from iot_dr_cli.operations import PRIMARY_OUTPUTS, OperatorError, Stack, find_stack, named_stack
from iot_dr_local.route53 import FailoverRecord, failover_records_from_route53

SECONDARY_OUTPUTS = ("ReplicationStateTableName", "DeadLetterTableName", "StateMachineArn")
HEALTH_CHECKER_OUTPUTS = ("HealthCheckId",)


@dataclass(frozen=True)
class DrillTarget:
    """Where the drill runs: the stacks' names, the secondary's ledger table (the lag metric's dimension), the
    primary's Route 53 health check, the failover record's name and the health check of its SECONDARY answer (None
    when Route 53 has no such record, or that answer has no health check)."""

    primary_stack: str
    secondary_stack: str
    health_checker_stack: str
    state_table: str
    health_check_id: str
    record_name: str | None
    secondary_health_check_id: str | None = None


def _stack(region: str, outputs: tuple[str, ...], role: str, name: str | None) -> Stack:
    stack = named_stack(region, name) if name else find_stack(region, outputs, role)
    missing = [output for output in outputs if output not in stack.outputs]
    if missing:
        raise OperatorError(f"stack {stack.name} in {region} has no output {', '.join(missing)}: not a {role} stack")
    return stack


def failover_record(route53: Any, health_check_id: str) -> FailoverRecord | None:
    """The failover CNAME whose PRIMARY record uses ``health_check_id``, from every hosted zone of the account."""
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for zone in page["HostedZones"]:
            try:
                records = failover_records_from_route53(route53, zone["Id"])
            except ValueError:
                continue
            for record in records:
                if record.primary_health_check_id == health_check_id:
                    return record
    return None


def find_target(primary: str, secondary: str, route53: Any, stack_postfix: str | None = None) -> DrillTarget:
    """The deployment replicating ``primary`` -> ``secondary``; OperatorError (for the user) when it is not found."""
    names = Deployment(primary, secondary, stack_postfix, "") if stack_postfix else None
    primary_stack = _stack(primary, PRIMARY_OUTPUTS, "primary", names.primary_stack if names else None)
    secondary_stack = _stack(secondary, SECONDARY_OUTPUTS, "secondary", names.secondary_stack if names else None)
    if secondary_stack.parameters.get("PrimaryRegion") not in (None, primary):
        raise OperatorError(
            f"stack {secondary_stack.name} replicates from {secondary_stack.parameters['PrimaryRegion']}, not {primary}"
        )
    checker = _stack(primary, HEALTH_CHECKER_OUTPUTS, "health-checker", names.health_checker_stack if names else None)
    health_check_id = checker.outputs["HealthCheckId"]
    record = failover_record(route53, health_check_id)
    secondary_check = record.secondary_health_check_id if record is not None else None
    return DrillTarget(
        primary_stack.name,
        secondary_stack.name,
        checker.name,
        secondary_stack.outputs["ReplicationStateTableName"],
        health_check_id,
        None if record is None else record.name.rstrip("."),
        secondary_check or _secondary_health_check(secondary, names),
    )


def _secondary_health_check(secondary: str, names: Deployment | None) -> str | None:
    """The health check the secondary's health-checker stack created, when there is one (the timeline shows it)."""
    try:
        name = names.health_checker_stack if names else None
        stack = _stack(secondary, HEALTH_CHECKER_OUTPUTS, "health-checker", name)
    except OperatorError:
        return None
    return stack.outputs["HealthCheckId"]
