"""``iot-dr local up``: serve the local two-region cloud with the solution deployed until interrupted."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from iot_dr_local.cloud import LocalCloud


def serve(port: int, primary_region: str, secondary_region: str) -> int:
    if primary_region == secondary_region:
        print("iot-dr: error: the primary and secondary regions must differ", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    cloud = LocalCloud(primary_region, secondary_region, port=port)
    try:
        cloud.start()
        cloud.prepare_account()
        cloud.deploy(progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(f"READY endpoint={cloud.endpoint}", flush=True)
        stop.wait()
    finally:
        cloud.stop()
    return 0
