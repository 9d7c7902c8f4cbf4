"""Operator commands on a deployed secondary: list parked events and replay them."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from iot_dr import aws
from iot_dr.dead_letters import DeadLetter, DeadLetters
from iot_dr.replay import ReplayReport, replay


class OperatorError(Exception):
    """A problem the operator can fix (wrong stack, missing output); printed without a stack trace."""


@dataclass(frozen=True)
class SecondaryTargets:
    dead_letter_table: str
    state_machine_arn: str | None


def resolve_targets(
    region: str, stack: str | None, table: str | None, state_machine_arn: str | None
) -> SecondaryTargets:
    """Names from the secondary stack's outputs, unless given explicitly."""
    if stack:
        outputs = _stack_outputs(region, stack)
        table = table or outputs.get("DeadLetterTableName")
        state_machine_arn = state_machine_arn or outputs.get("StateMachineArn")
    if not table:
        raise OperatorError("name the secondary stack with --stack, or the dead-letter table with --table")
    return SecondaryTargets(table, state_machine_arn)


def _stack_outputs(region: str, stack: str) -> dict[str, str]:
    try:
        stacks = aws.client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"]
    except Exception as err:
        if aws.error_code(err) == "ValidationError":
            raise OperatorError(f"stack {stack} does not exist in {region}") from err
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _parked(region: str, targets: SecondaryTargets) -> list[DeadLetter]:
    """Every parked event; raises OperatorError when the table does not exist."""
    try:
        return list(DeadLetters(aws.client("dynamodb", region), targets.dead_letter_table))
    except Exception as err:
        if aws.error_code(err) == "ResourceNotFoundException":
            raise OperatorError(f"dead-letter table {targets.dead_letter_table} does not exist in {region}") from err
        raise


def list_dead_letters(region: str, targets: SecondaryTargets) -> list[dict[str, Any]]:
    letters = _parked(region, targets)
    return [
        {
            "deadLetterId": letter.dead_letter_id,
            "parkedAt": datetime.datetime.fromtimestamp(letter.parked_at / 1000, datetime.UTC).isoformat(),
            "stage": letter.stage,
            "eventType": letter.event_type,
            "errorType": letter.error_type,
            "reason": letter.reason,
        }
        for letter in sorted(letters, key=lambda letter: letter.parked_at)
    ]


def replay_dead_letters(region: str, targets: SecondaryTargets, ids: list[str] | None, dry_run: bool) -> ReplayReport:
    if not targets.state_machine_arn:
        raise OperatorError("replay needs the state machine: pass --stack or --state-machine-arn")
    return replay(
        aws.client("stepfunctions", region),
        DeadLetters(aws.client("dynamodb", region), targets.dead_letter_table),
        targets.state_machine_arn,
        set(ids) if ids else None,
        dry_run,
    )


def discard_dead_letters(region: str, targets: SecondaryTargets, ids: list[str]) -> list[str]:
    """Delete parked events by id, for good; raises OperatorError naming any id that is not parked."""
    known = {letter.dead_letter_id for letter in _parked(region, targets)}
    unknown = sorted(set(ids) - known)
    if unknown:
        raise OperatorError(f"no parked event with id {', '.join(unknown)}")
    letters = DeadLetters(aws.client("dynamodb", region), targets.dead_letter_table)
    for dead_letter_id in ids:
        letters.remove(dead_letter_id)
    return sorted(set(ids))


def format_dead_letters(rows: list[dict[str, Any]], as_json: bool) -> str:
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return "no parked events"
    lines = [f"{'parked at':<33}{'event type':<30}{'error':<28}id / reason"]
    for row in rows:
        lines.append(f"{row['parkedAt']:<33}{row['eventType']:<30}{row['errorType']:<28}{row['deadLetterId']}")
        lines.append(f"{'':<91}{row['reason'][:200]}")
    return "\n".join(lines)
