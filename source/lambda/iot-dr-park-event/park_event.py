"""Step Functions task: parks an event the workflow could not apply in the dead-letter table (or its fallback queue)."""

from __future__ import annotations

from typing import Any

from iot_dr.core import aws
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import DeadLetterSettings
from iot_dr.parking.dead_letters import DeadLetters, park_with_fallback


@lambda_entry(correlation_id_path="event.event.uuid")
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    settings = DeadLetterSettings.from_env()
    dead_letters = DeadLetters(aws.client("dynamodb", settings.region), settings.dead_letter_table)
    return park_with_fallback(dead_letters, aws.client("sqs", settings.region), settings.fallback_queue_url, event)
