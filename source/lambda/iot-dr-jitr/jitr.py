"""Topic rule target: just-in-time registration of devices whose CA is registered in this region."""

from __future__ import annotations

from typing import Any

from iot_dr.core import aws
from iot_dr.core.arns import Arn
from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import JitrSettings
from iot_dr.provisioning.jitr import provision


@lambda_entry(correlation_id_path="certificateId")
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    settings = JitrSettings.from_env()
    partition = Arn.parse(context.invoked_function_arn).partition
    return provision(aws.client("iot", settings.region), settings.policy_name, event, partition)
