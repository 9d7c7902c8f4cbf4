"""Replay of parked events through the replication workflow."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iot_dr.core.aws import error_code
from iot_dr.core.errors import MalformedEvent
from iot_dr.parking.dead_letters import STAGE_TRIGGER, DeadLetters
from iot_dr.secondary.trigger import execution_input, workflow_input_from_record

if TYPE_CHECKING:
    from types_boto3_stepfunctions import SFNClient


@dataclass
class ReplayReport:
    """What ``replay`` did: the dead-letter ids whose workflow started, and ``failed`` (id to reason)."""

    replayed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def replay(
    sfn: SFNClient,
    dead_letters: DeadLetters,
    state_machine_arn: str,
    ids: set[str] | None = None,
    dry_run: bool = False,
) -> ReplayReport:
    """Start the workflow again for parked events; an event leaves the table only once its execution started."""
    report = ReplayReport()
    for letter in list(dead_letters):
        if ids is not None and letter.dead_letter_id not in ids:
            continue
        try:
            workflow_input = (
                workflow_input_from_record(letter.payload) if letter.stage == STAGE_TRIGGER else letter.payload
            )
        except MalformedEvent as err:
            report.failed[letter.dead_letter_id] = str(err)
            continue
        if not dry_run:
            try:
                sfn.start_execution(
                    stateMachineArn=state_machine_arn,
                    name=f"replay-{uuid.uuid4()}",
                    input=json.dumps(execution_input([workflow_input])),
                )
            except Exception as err:
                if not error_code(err):
                    raise
                report.failed[letter.dead_letter_id] = str(err)
                continue
            dead_letters.remove(letter)
        report.replayed.append(letter.dead_letter_id)
    return report
