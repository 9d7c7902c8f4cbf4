"""What a drill is asked to do (no heavy imports: the command line builds it before the local cloud is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLIENTS = 5
# The largest fleet a drill or the demo creates on the local cloud.
MAX_DEVICES = 10_000


@dataclass(frozen=True)
class DrillOptions:
    """``devices``: fleet size (1..MAX_DEVICES); ``clients``: simulated devices publishing throughout (1..MAX_CLIENTS,
    at most ``devices``); ``outage_seconds``: how long the drill stays failed over once every client reconnected;
    ``message_interval`` seconds between a client's messages; ``health_check_interval`` seconds between probes.
    With ``aws``: the deployment's stacks by the guide's names with ``stack_postfix`` (found by their outputs
    otherwise), the failover ``record`` (found in Route 53 otherwise), the resolver ``dns_server`` (address, port;
    the system's otherwise), ``switch_timeout`` seconds for replication and each DNS switch, and where the simulated
    devices connect: ``mqtt_port`` of the regional endpoints, ``root_ca`` they trust (None: the system's trust
    store)."""

    devices: int
    report_dir: Path
    primary_region: str = "us-east-1"
    secondary_region: str = "us-west-2"
    clients: int = DEFAULT_CLIENTS
    outage_seconds: float = 3.0
    message_interval: float = 0.1
    health_check_interval: float = 0.5
    # Against a deployment (``aws_run``): where it is and how long a switch may take.
    aws: bool = False
    stack_postfix: str | None = None
    record: str | None = None
    dns_server: tuple[str, int] | None = None
    switch_timeout: float = 600.0
    mqtt_port: int = 8883
    root_ca: Path | None = None
