"""Topic rule target: just-in-time registration of devices whose CA is registered in this region."""

from __future__ import annotations

from typing import Any

from iot_dr import aws
from iot_dr.arns import Arn
from iot_dr.jitr import provision
from iot_dr.logs import configure_logging
from iot_dr.settings import JitrSettings


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    configure_logging()
    settings = JitrSettings.from_env()
    partition = Arn.parse(context.invoked_function_arn).partition
    return provision(aws.client("iot", settings.region), settings.policy_name, event, partition)
