"""Custom resource of the main stack: checks prerequisites and starts the deployment; removes it on deletion."""

from __future__ import annotations

from typing import Any

from iot_dr.core import aws
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import RegionSettings
from iot_dr.deploy import launch_solution


@lambda_entry(correlation_id_path="RequestId")
def handler(event: dict[str, Any], context: Any) -> None:
    settings = launch_solution.LaunchSettings.from_env()
    launch_solution.handle_event(event, context, settings, aws.client, RegionSettings.from_env().region)
