"""Runs the replication workflow on a group of items and says which items it did not apply.

The workflow is an Express state machine, started with ``StartSyncExecution``: the call returns when the execution
ends, with its status (SUCCEEDED, FAILED or TIMED_OUT) and output
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartSyncExecution.html). An Express execution
started asynchronously that fails or times out is only visible in CloudWatch Logs, so the items it carried would be
acknowledged and lost; run synchronously, anything but SUCCEEDED fails every item of the execution, and each item
the output reports as not applied fails alone. The callers keep failed items where they can be retried (the stream
trigger reports them as batch item failures; ``iot-dr replay`` keeps the letter).

Express executions run at least once (a retried call may run the items twice); the version ledger absorbs that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from iot_dr.core.event_types import APPLY_WAVE, EventType

if TYPE_CHECKING:
    from types_boto3_stepfunctions import SFNClient

# "Maximum duration: 5 minutes" for an Express execution
# (https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html).
EXPRESS_MAX_DURATION_SECONDS = 300
# StartSyncExecution answers when the execution ends: the read timeout outlasts the longest execution (botocore's
# default is 60 s: https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html).
SYNC_EXECUTION_CONFIG = Config(read_timeout=EXPRESS_MAX_DURATION_SECONDS + 20)


class WorkflowNotSucceeded(Exception):
    """The execution ended FAILED or TIMED_OUT: none of its items counts as applied."""

    def __init__(self, status: str, error: str, cause: str) -> None:
        super().__init__(f"workflow execution {status}: {error} {cause}".strip())
        self.status, self.error, self.cause = status, error, cause


def waves(items: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indexes of ``items`` grouped by ``APPLY_WAVE`` (earlier waves first), stream order kept within a wave."""
    grouped: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        grouped.setdefault(APPLY_WAVE[EventType(item["eventType"])], []).append(index)
    return [grouped[wave] for wave in sorted(grouped)]


def execution_input(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"waves": [{"items": [...]}, ...]}``: the workflow's input for ``items`` (workflow inputs, see ``waves``)."""
    return {"waves": [{"items": [items[index] for index in wave]} for wave in waves(items)]}


def apply_items(sfn: SFNClient, state_machine_arn: str, name: str, items: Sequence[dict[str, Any]]) -> list[int]:
    """Run the workflow on ``items`` (workflow inputs ``{eventType, event, record}``) and wait for its end.

    Returns the indexes of the items neither applied nor parked: the workflow's output is, per wave, one result
    per item, and an item whose parking failed ends as ``{"notApplied": true, "error": ...}``. Raises
    ``WorkflowNotSucceeded`` if the execution failed or timed out, and the client's error if it did not start.
    ``sfn`` should use ``SYNC_EXECUTION_CONFIG``.
    """
    grouped = waves(items)
    response = sfn.start_sync_execution(
        stateMachineArn=state_machine_arn,
        name=name,
        input=json.dumps(execution_input(items)),
    )
    if response["status"] != "SUCCEEDED":
        raise WorkflowNotSucceeded(response["status"], response.get("error", ""), response.get("cause", ""))
    results = json.loads(response["output"])
    return sorted(
        index
        for wave, wave_results in zip(grouped, results, strict=True)
        for index, result in zip(wave, wave_results, strict=True)
        if isinstance(result, dict) and result.get("notApplied")
    )
