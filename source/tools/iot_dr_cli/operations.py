"""Operator commands on a deployment: list everything parked, and replay it.

Parked items live in five places: the secondary's dead-letter table (the workflow and the trigger), the
stream mapping's on-failure queue (secondary), the topic rules' and capture function's dead-letter queue
(primary), and the just-in-time registration dead-letter queues (both regions). The stacks are found from
their outputs when ``--stack`` is not given.
"""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from iot_dr.core import aws
from iot_dr.parking.dead_letters import DeadLetter, DeadLetters
from iot_dr.parking.parked_queues import (
    FUNCTION_EVENT,
    PARKED_ITEM,
    REPLAY_VISIBILITY_SECONDS,
    RULE_ERROR,
    STREAM_ON_FAILURE,
    QueuedLetter,
    delete,
    is_registration,
    original_message,
    read_queue,
    release,
    replay_function_event,
    replay_parked_item,
    replay_rule_error,
    replay_stream_batch,
)
from iot_dr.parking.replay import ReplayReport, replay
from iot_dr.secondary.workflow import SYNC_EXECUTION_CONFIG

SECONDARY_OUTPUTS = ("DeadLetterTableName", "StateMachineArn", "TriggerFailureQueueUrl")
PRIMARY_OUTPUTS = ("CaptureDeadLetterQueueUrl", "CaptureChangesFunctionName", "GlobalDynamoDBTableName")
DEFAULT_ITEM_TTL_SECONDS = 172800


class OperatorError(Exception):
    """A problem the operator can fix (wrong stack, missing output); printed without a stack trace."""


@dataclass(frozen=True)
class Stack:
    name: str
    outputs: dict[str, str]
    parameters: dict[str, str]


@dataclass(frozen=True)
class ParkedQueue:
    """A queue holding parked messages, and where its messages are replayed."""

    region: str
    url: str
    # The function a "function-event" message goes back to.
    function: str | None


@dataclass(frozen=True)
class SecondaryTargets:
    region: str
    dead_letter_table: str
    state_machine_arn: str | None
    replica_table: str | None = None
    item_ttl_seconds: int = DEFAULT_ITEM_TTL_SECONDS
    queues: tuple[ParkedQueue, ...] = field(default_factory=tuple)


def _stacks(region: str) -> list[Stack]:
    cloudformation = aws.client("cloudformation", region)
    stacks = []
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if stack.get("StackStatus", "").startswith("DELETE"):
                continue
            stacks.append(
                Stack(
                    stack["StackName"],
                    {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
                    {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
                )
            )
    return stacks


def named_stack(region: str, name: str) -> Stack:
    """The stack ``name`` in ``region``; OperatorError when it does not exist."""
    try:
        (stack,) = aws.client("cloudformation", region).describe_stacks(StackName=name)["Stacks"]
    except Exception as err:
        if aws.error_code(err) == "ValidationError":
            raise OperatorError(f"stack {name} does not exist in {region}") from err
        raise
    return Stack(
        name,
        {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
    )


def find_stack(region: str, outputs: tuple[str, ...], role: str, table: str | None = None) -> Stack:
    """The one stack in ``region`` with all ``outputs`` (and, if given, replicating ``table``); OperatorError if
    there is none or several."""
    found = [s for s in _stacks(region) if all(o in s.outputs for o in outputs)]
    if table is not None:
        found = [s for s in found if s.outputs.get("GlobalDynamoDBTableName") == table]
    if not found:
        raise OperatorError(f"no {role} stack of Disaster Recovery for AWS IoT in {region}; name it with --stack")
    if len(found) > 1:
        names = ", ".join(sorted(s.name for s in found))
        raise OperatorError(f"several {role} stacks in {region} ({names}); choose one with --stack")
    return found[0]


def resolve_targets(
    region: str, stack: str | None, table: str | None, state_machine_arn: str | None
) -> SecondaryTargets:
    """Names from the secondary stack (given or found) and the primary stack it replicates from.

    With only ``table`` given, just the dead-letter table is used. The primary region may be unreachable (an
    outage): its queues are then left out, with a warning on stderr.
    """
    if table and not stack:
        return SecondaryTargets(region, table, state_machine_arn)
    secondary = named_stack(region, stack) if stack else find_stack(region, SECONDARY_OUTPUTS, "secondary")
    outputs = secondary.outputs
    queues = [
        ParkedQueue(region, url, function)
        for url, function in (
            (outputs.get("TriggerFailureQueueUrl"), None),
            (outputs.get("JITRDeadLetterQueueUrl"), outputs.get("JITRLambdaFunctionName")),
        )
        if url
    ]
    replica = secondary.parameters.get("GlobalDynamoDBTableName")
    item_ttl = DEFAULT_ITEM_TTL_SECONDS
    primary_region = secondary.parameters.get("PrimaryRegion")
    if primary_region:
        try:
            primary = find_stack(primary_region, PRIMARY_OUTPUTS, "primary", replica)
        except OperatorError as err:
            print(f"iot-dr: warning: {err}", file=sys.stderr)
        except Exception as err:  # an unreachable region must not hide the secondary's parked items
            print(f"iot-dr: warning: primary region {primary_region} not reachable: {err}", file=sys.stderr)
        else:
            item_ttl = int(primary.parameters.get("ItemTtlSeconds") or DEFAULT_ITEM_TTL_SECONDS)
            queues.append(
                ParkedQueue(
                    primary_region,
                    primary.outputs["CaptureDeadLetterQueueUrl"],
                    primary.outputs.get("CaptureChangesFunctionName"),
                )
            )
    table = table or outputs.get("DeadLetterTableName")
    if not table:
        raise OperatorError(f"stack {secondary.name} has no DeadLetterTableName output")
    return SecondaryTargets(
        region, table, state_machine_arn or outputs.get("StateMachineArn"), replica, item_ttl, tuple(queues)
    )


def _queued(targets: SecondaryTargets, visibility: int = 0) -> list[tuple[ParkedQueue, QueuedLetter]]:
    found = []
    for queue in targets.queues:
        try:
            letters = read_queue(aws.client("sqs", queue.region), queue.url, visibility)
            found.extend((queue, letter) for letter in letters)
        except Exception as err:
            print(f"iot-dr: warning: queue {queue.url} not readable: {err}", file=sys.stderr)
    return found


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def _parked(region: str, targets: SecondaryTargets) -> list[DeadLetter]:
    """Every parked event; raises OperatorError when the table does not exist."""
    try:
        return list(DeadLetters(aws.client("dynamodb", region), targets.dead_letter_table))
    except Exception as err:
        if aws.error_code(err) == "ResourceNotFoundException":
            raise OperatorError(f"dead-letter table {targets.dead_letter_table} does not exist in {region}") from err
        raise


def list_dead_letters(region: str, targets: SecondaryTargets) -> list[dict[str, Any]]:
    """Every parked item: ``{deadLetterId, parkedAt (ISO 8601), stage, eventType, errorType, reason}``, oldest first."""
    letters = _parked(region, targets)
    rows = [
        {
            "deadLetterId": letter.dead_letter_id,
            "parkedAt": _iso(letter.parked_at),
            "stage": letter.stage,
            "eventType": letter.event_type,
            "errorType": letter.error_type,
            "reason": letter.reason,
        }
        for letter in letters
    ]
    rows += [
        {
            "deadLetterId": letter.letter_id,
            "parkedAt": _iso(letter.sent_at),
            "stage": letter.kind,
            "eventType": letter.event_type,
            "errorType": letter.kind,
            "reason": letter.reason,
        }
        for _, letter in _queued(targets)
    ]
    return sorted(rows, key=lambda row: row["parkedAt"])


def replay_dead_letters(region: str, targets: SecondaryTargets, ids: list[str] | None, dry_run: bool) -> ReplayReport:
    """Replay the dead-letter table's letters and every queued message (or only ``ids``)."""
    if not targets.state_machine_arn:
        raise OperatorError("replay needs the state machine: pass --stack or --state-machine-arn")
    wanted = set(ids) if ids else None
    report = replay(
        aws.client("stepfunctions", region, SYNC_EXECUTION_CONFIG),
        DeadLetters(aws.client("dynamodb", region), targets.dead_letter_table),
        targets.state_machine_arn,
        wanted,
        dry_run,
    )
    for queue, letter in _queued(targets, 0 if dry_run else REPLAY_VISIBILITY_SECONDS):
        if wanted is not None and letter.letter_id not in wanted:
            if not dry_run:
                release(aws.client("sqs", queue.region), letter)
            continue
        if dry_run:
            report.replayed.append(letter.letter_id)
            continue
        sqs = aws.client("sqs", queue.region)
        try:
            _replay_one(targets, queue, letter)
        except Exception as err:
            release(sqs, letter)
            report.failed[letter.letter_id] = str(err)
            continue
        delete(sqs, letter)
        report.replayed.append(letter.letter_id)
    return report


def _replay_one(targets: SecondaryTargets, queue: ParkedQueue, letter: QueuedLetter) -> None:
    if letter.kind == RULE_ERROR and is_registration(letter) and queue.function:
        replay_function_event(aws.client("lambda", queue.region), queue.function, original_message(letter))
    elif letter.kind == RULE_ERROR:
        if not targets.replica_table:
            raise OperatorError("the secondary stack names no replication table")
        replay_rule_error(
            aws.client("dynamodb", targets.region), targets.replica_table, letter, targets.item_ttl_seconds
        )
    elif letter.kind == PARKED_ITEM:
        replay_parked_item(
            aws.client("stepfunctions", targets.region, SYNC_EXECUTION_CONFIG), str(targets.state_machine_arn), letter
        )
    elif letter.kind == STREAM_ON_FAILURE:
        replay_stream_batch(
            aws.client("dynamodbstreams", targets.region),
            aws.client("stepfunctions", targets.region, SYNC_EXECUTION_CONFIG),
            str(targets.state_machine_arn),
            letter,
        )
    elif letter.kind == FUNCTION_EVENT and queue.function:
        replay_function_event(aws.client("lambda", queue.region), queue.function, letter)
    else:
        raise OperatorError(f"no function to replay {letter.letter_id} with")


def discard_dead_letters(region: str, targets: SecondaryTargets, ids: list[str]) -> list[str]:
    """Delete parked events by id, for good; raises OperatorError naming any id that is not parked."""
    known = {letter.dead_letter_id: letter for letter in _parked(region, targets)}
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise OperatorError(f"no parked event with id {', '.join(unknown)}")
    letters = DeadLetters(aws.client("dynamodb", region), targets.dead_letter_table)
    for dead_letter_id in sorted(set(ids)):
        letters.remove(known[dead_letter_id])
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
