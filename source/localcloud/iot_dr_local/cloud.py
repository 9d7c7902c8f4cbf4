"""The local two-region cloud: moto on 127.0.0.1 with every extension the solution needs, in this process.

``LocalCloud`` starts a moto server, points this process's AWS SDK at it, installs the extensions and can
prepare the account and deploy the solution from the templates with the real deployment launcher. Tools,
tests and demos talk to it like to AWS, through ``endpoint``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from iot_dr import aws
from iot_dr_local import cfn_extensions, cloudtrail, iot_events, lambda_runtime, locking, s3_policies
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.global_tables import GlobalTableReplicator
from iot_dr_local.rules_engine import RulesEngine
from iot_dr_local.scheduler import Scheduler
from iot_dr_local.streams import StreamPoller

LOG = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
REGISTRY_EVENT_TYPES = (
    "THING",
    "THING_TYPE",
    "THING_TYPE_ASSOCIATION",
    "THING_GROUP",
    "THING_GROUP_MEMBERSHIP",
    "THING_GROUP_HIERARCHY",
)
TRAIL_NAME = "iot-dr-local-management-events"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """Progress sink for callers that do not print."""


class LocalCloud:
    def __init__(
        self,
        primary_region: str = "us-east-1",
        secondary_region: str = "us-west-2",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if primary_region == secondary_region:
            raise ValueError("the primary and secondary regions must differ")
        if not host.startswith("127."):
            raise ValueError("the local cloud binds to loopback addresses (127.0.0.0/8) only")
        self.primary_region = primary_region
        self.secondary_region = secondary_region
        self._host, self._port = host, port
        self._server: ThreadedMotoServer | None = None
        self.dispatcher = Dispatcher()
        self._stoppers: list[Callable[[], None]] = []
        self._resetters: list[Callable[[], None]] = []
        self._build_dir: tempfile.TemporaryDirectory[str] | None = None
        self.scheduler: Scheduler | None = None
        self.replicator: GlobalTableReplicator | None = None
        self.rules: RulesEngine | None = None
        self.launch: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        locking.install()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        self._port = self._server.get_host_and_port()[1]
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            AWS_DEFAULT_REGION=self.primary_region,
            # moto's own Step Functions clients call http://localhost:$MOTO_PORT.
            MOTO_PORT=str(self._port),
        )
        for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]:
            del os.environ[name]
        aws.clear_client_cache()
        self._configure_moto()
        self._install_extensions()

    def _configure_moto(self) -> None:
        body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        request = urllib.request.Request(f"{self.endpoint}/moto-api/config", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        # Certificate IDs are the SHA-256 of the DER encoding, as in AWS (multi-account registration needs it).
        default_user_config["iot"] = {"use_valid_cert": True}

    def _install_extensions(self) -> None:
        s3_policies.install()
        self._stoppers.append(s3_policies.uninstall)
        runtime = lambda_runtime.install(self.endpoint, self.dispatcher)
        self._stoppers.append(lambda_runtime.stop)
        self._resetters.append(runtime.reset)

        poller = StreamPoller(self.dispatcher)
        poller.start()
        self._stoppers.append(poller.stop)
        self._resetters.append(poller.reset)

        self.replicator = GlobalTableReplicator(self.dispatcher)
        self.replicator.install()
        cfn_extensions.install(self.replicator)
        self._stoppers.extend([self.replicator.uninstall, cfn_extensions.uninstall])
        self._resetters.append(self.replicator.reset)

        self.scheduler = Scheduler()
        self.scheduler.start()
        self._stoppers.append(self.scheduler.stop)
        self._resetters.append(self.scheduler.reset)

        self.rules = RulesEngine(self.dispatcher)
        self.rules.install()
        events = iot_events.install(self.rules)
        trail = cloudtrail.install(self.dispatcher)
        self._stoppers.extend([trail.uninstall, events.uninstall, self.rules.uninstall])
        self._resetters.append(self.rules.reset)
        self.dispatcher.add_busy_probe(_executions_running)

    def client(self, service: str, region: str) -> Any:
        return boto3.session.Session().client(service, region_name=region, endpoint_url=self.endpoint)

    def prepare_account(self) -> None:
        """What the guide asks of a user before deploying: registry events, fleet indexing, a CloudTrail trail."""
        iot = self.client("iot", self.primary_region)
        iot.update_event_configurations(
            eventConfigurations={event_type: {"Enabled": True} for event_type in REGISTRY_EVENT_TYPES}
        )
        iot.update_indexing_configuration(
            thingIndexingConfiguration={"thingIndexingMode": "REGISTRY_AND_SHADOW"},
            thingGroupIndexingConfiguration={"thingGroupIndexingMode": "ON"},
        )
        bucket = f"iot-dr-local-cloudtrail-{ACCOUNT_ID}"
        self.client("s3", "us-east-1").create_bucket(Bucket=bucket)
        trails = self.client("cloudtrail", self.primary_region)
        trails.create_trail(Name=TRAIL_NAME, S3BucketName=bucket, IsMultiRegionTrail=True)
        trails.start_logging(Name=TRAIL_NAME)

    def deploy(self, progress: Progress = _quiet, **secondary_parameters: str) -> Any:
        """Build the artifacts and deploy both regional stacks with the deployment launcher."""
        from iot_dr_cli.build import build_artifacts
        from iot_dr_cli.launcher import LaunchConfig, launch

        if self._build_dir is None:
            self._build_dir = tempfile.TemporaryDirectory(prefix="iot-dr-build-")
        started = time.monotonic()
        build = build_artifacts(Path(self._build_dir.name))
        config = LaunchConfig(
            primary_region=self.primary_region,
            secondary_region=self.secondary_region,
            stack_postfix=time.strftime("%Y%m%d%H%M%S"),
            bucket_suffix="local",
            secondary_parameters=secondary_parameters,
        )
        self.launch = launch(config, build, progress)
        progress(f"solution deployed in {time.monotonic() - started:.1f} s")
        return self.launch

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Wait until no event, stream record, replication or workflow is in flight."""
        return self.dispatcher.wait_idle(timeout)

    def reset(self) -> None:
        """Forget everything: moto's state and every extension's."""
        self.wait_idle(30)
        with locking.SERVICE_LOCK.held():
            request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        for reset in self._resetters:
            reset()
        aws.clear_client_cache()
        self.launch = None

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            stop()
        self._stoppers.clear()
        self.dispatcher.shutdown()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._build_dir is not None:
            self._build_dir.cleanup()
            self._build_dir = None


def _executions_running() -> bool:
    with locking.SERVICE_LOCK.held():
        for regions in list(stepfunctions_parser_backends.values()):
            for backend in list(regions.values()):
                if backend._get_executions(ExecutionStatus.RUNNING):
                    return True
    return False
