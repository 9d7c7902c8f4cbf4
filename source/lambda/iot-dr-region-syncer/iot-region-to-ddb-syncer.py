"""The region-to-ddb sync as a Lambda function (small fleets: an invocation stops at 15 minutes) or a script.

Settings are the guide's environment variables (iot_dr.sync.settings). An invocation event may name a shard,
``{"shard": "i/n"}``, so several invocations share a fleet. Run as a script it is ``iot-dr sync region-to-ddb``: the
container image's command.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from iot_dr.core.logs import lambda_entry
from iot_dr.sync.runner import REGION_TO_DDB, sync
from iot_dr.sync.settings import from_values


@lambda_entry()
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Returns the run's summary (iot_dr.sync.engine.Summary.as_json); raises SettingsError for bad settings."""
    values = {**os.environ, **({"SHARD": str(event["shard"])} if event.get("shard") else {})}
    return sync(REGION_TO_DDB, from_values(values, needs_table=True)).as_json()


if __name__ == "__main__":
    from iot_dr_cli.main import main

    sys.exit(main(["sync", "region-to-ddb", *sys.argv[1:]]))
