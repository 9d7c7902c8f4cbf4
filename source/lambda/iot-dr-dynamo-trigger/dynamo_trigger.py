"""DynamoDB stream trigger in the secondary: runs the replication workflow on each stream batch and reports the
records it did not apply."""

from __future__ import annotations

from typing import Any

from iot_dr.core import aws
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import TriggerSettings
from iot_dr.parking.dead_letters import DeadLetters
from iot_dr.secondary.trigger import handle_batch
from iot_dr.secondary.workflow import SYNC_EXECUTION_CONFIG


@lambda_entry()
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = TriggerSettings.from_env()
    dead_letters = DeadLetters(aws.client("dynamodb", settings.region), settings.dead_letter_table)
    sfn = aws.client("stepfunctions", settings.region, SYNC_EXECUTION_CONFIG)
    return handle_batch(sfn, dead_letters, settings.state_machine_arn, event)
