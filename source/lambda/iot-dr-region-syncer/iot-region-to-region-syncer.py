"""The region-to-region sync: a Lambda function for small fleets (an invocation stops at 15 minutes; the event may
name a shard: iot_dr.sync.runner.run_invocation), and as a script ``iot-dr sync region-to-region``
(the container's command).
"""

from __future__ import annotations

import sys

from iot_dr.sync.runner import REGION_TO_REGION, lambda_handler

handler = lambda_handler(REGION_TO_REGION)

if __name__ == "__main__":
    from iot_dr_cli.main import main

    sys.exit(main(["sync", "region-to-region", *sys.argv[1:]]))
