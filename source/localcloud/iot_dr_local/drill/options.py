"""What a drill is asked to do (no heavy imports: the command line builds it before the local cloud is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLIENTS = 5


@dataclass(frozen=True)
class DrillOptions:
    """``devices``: fleet size (1..MAX_DEVICES); ``clients``: simulated devices publishing throughout (1..MAX_CLIENTS,
    at most ``devices``); ``outage_seconds``: how long the drill stays failed over once every client reconnected;
    ``message_interval`` seconds between a client's messages; ``health_check_interval`` seconds between probes."""

    devices: int
    report_dir: Path
    primary_region: str = "us-east-1"
    secondary_region: str = "us-west-2"
    clients: int = DEFAULT_CLIENTS
    outage_seconds: float = 3.0
    message_interval: float = 0.1
    health_check_interval: float = 0.5
