"""Replay of parked events through the replication workflow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iot_dr.core.aws import error_code
from iot_dr.core.errors import MalformedEvent
from iot_dr.parking.dead_letters import STAGE_TRIGGER, DeadLetters
from iot_dr.secondary.trigger import workflow_input_from_record
from iot_dr.secondary.workflow import WorkflowNotSucceeded, apply_items

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
    """Run the workflow again for parked events (``sfn`` with ``workflow.SYNC_EXECUTION_CONFIG``); an event leaves
    the table only once the workflow applied or parked it again, otherwise its reason is in ``failed``."""
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
                not_applied = apply_items(sfn, state_machine_arn, f"replay-{uuid.uuid4()}", [workflow_input])
            except WorkflowNotSucceeded as err:
                report.failed[letter.dead_letter_id] = str(err)
                continue
            except Exception as err:
                if not error_code(err):
                    raise
                report.failed[letter.dead_letter_id] = str(err)
                continue
            if not_applied:
                report.failed[letter.dead_letter_id] = "the workflow could neither apply nor park it"
                continue
            dead_letters.remove(letter)
        report.replayed.append(letter.dead_letter_id)
    return report
