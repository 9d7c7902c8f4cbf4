"""Custom resource that creates (and on stack deletion removes) the health checker's thing, certificate and policy."""

from __future__ import annotations

import os
from typing import Any

from iot_dr import aws, checker_identity
from iot_dr.logs import configure_logging


def handler(event: dict[str, Any], context: Any) -> None:
    configure_logging()
    region = os.environ["AWS_REGION"]
    checker_identity.handle_event(event, context, aws.client("iot", region), aws.client("secretsmanager", region))
