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
from botocore.config import Config
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from iot_dr.core import aws
from iot_dr.core.event_types import REGISTRY_EVENT_CONFIGURATIONS
from iot_dr_local import (
    acm_pca,
    bulk_registration,
    ca_registration,
    certificate_issuer,
    cfn_extensions,
    cloudtrail,
    iot_events,
    lambda_runtime,
    locking,
    moto_fixes,
    moto_speedups,
    route53_status,
    s3_policies,
)
from iot_dr_local.api_calls import ApiCallRecorder
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.failover import DeviceCertificate, FailoverServices
from iot_dr_local.failover_plan import FailoverSettings
from iot_dr_local.faults import FaultInjector
from iot_dr_local.global_tables import GlobalTableReplicator
from iot_dr_local.http_server import KeepAliveMotoServer
from iot_dr_local.outage_switch import OutageRoute
from iot_dr_local.quota_rules import Rates
from iot_dr_local.quotas import QuotaLimiter, resolve_rates
from iot_dr_local.rules_engine import RulesEngine
from iot_dr_local.scheduler import Scheduler
from iot_dr_local.step_functions import StepFunctionsExtension
from iot_dr_local.streams import StreamPoller

LOG = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
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
        quotas: str | Rates | None = None,
        lambda_concurrency: int = lambda_runtime.DEFAULT_ACCOUNT_CONCURRENCY,
    ) -> None:
        """``quotas``: None (no throttling), a profile of ``quota_rules.QUOTA_PROFILES`` such as ``"aws-default"``,
        or a rate table; see ``iot_dr_local.quotas``. Raises ValueError for an unknown profile.
        ``lambda_concurrency`` is the account's Lambda concurrency (1 runs one invocation at a time)."""
        if primary_region == secondary_region:
            raise ValueError("the primary and secondary regions must differ")
        if not host.startswith("127."):
            raise ValueError("the local cloud binds to loopback addresses (127.0.0.0/8) only")
        self.primary_region = primary_region
        self.secondary_region = secondary_region
        self._host, self._port = host, port
        self.lambda_concurrency = lambda_concurrency
        self._server: ThreadedMotoServer | None = None
        self.dispatcher = Dispatcher()
        self._workers: list[Callable[[], None]] = []
        self._stoppers: list[Callable[[], None]] = []
        self._resetters: list[Callable[[], None]] = []
        self._build_dir: tempfile.TemporaryDirectory[str] | None = None
        self.scheduler: Scheduler | None = None
        self.replicator: GlobalTableReplicator | None = None
        self.rules: RulesEngine | None = None
        self.launch: Any = None
        self.failover: FailoverServices | None = None
        self.api_calls = ApiCallRecorder()
        self.faults = FaultInjector()
        self.step_functions = StepFunctionsExtension(self.faults)
        self.quotas = QuotaLimiter(resolve_rates(quotas)) if quotas is not None else None
        self.outage_route = OutageRoute(self.set_region_down, self.faults.down)
        self._saved_environment: dict[str, str | None] = {}

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        locking.install()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Before the server answers its first /moto-api request: moto builds that route table once.
        self.outage_route.install()
        self._stoppers.append(self.outage_route.uninstall)
        self._server = KeepAliveMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        self._port = self._server.get_host_and_port()[1]
        environment = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.primary_region,
            # moto's own Step Functions clients call http://localhost:$MOTO_PORT.
            "MOTO_PORT": str(self._port),
        }
        overrides = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")]
        self._saved_environment = {name: os.environ.get(name) for name in [*environment, *overrides]}
        for name in overrides:
            del os.environ[name]
        os.environ.update(environment)
        aws.clear_client_cache()
        # moto's backends are process-wide: whatever an earlier user of moto in this process left (another local
        # cloud, a test's moto server) must not show up in this one.
        self._reset_moto()
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
        self.api_calls.install()
        self.faults.install()
        self._stoppers.extend([self.api_calls.uninstall, self.faults.uninstall])
        self._resetters.extend([self.api_calls.reset, self.faults.reset])
        if self.quotas is not None:
            self.quotas.install()
            self._stoppers.append(self.quotas.uninstall)
            self._resetters.append(self.quotas.reset)
        s3_policies.install()
        moto_fixes.install()
        moto_speedups.install()
        self._stoppers.extend([s3_policies.uninstall, moto_fixes.uninstall, moto_speedups.uninstall])
        # After moto_speedups: it wraps the evaluation entry point the speedups replace.
        self.step_functions.install()
        self._stoppers.append(self.step_functions.uninstall)
        self._resetters.append(self.step_functions.reset)
        # Private CA and CA registration as the notebooks and just-in-time registration use them.
        acm_pca.install()
        ca_registration.install()
        self._stoppers.extend([acm_pca.uninstall, ca_registration.uninstall])
        self._resetters.extend([acm_pca.reset, ca_registration.reset])
        certificate_issuer.install()
        bulk_registration.install(self.endpoint, self.dispatcher)
        route53_status.install()
        self._stoppers.extend([certificate_issuer.uninstall, bulk_registration.uninstall, route53_status.uninstall])
        self._resetters.append(bulk_registration.reset)
        runtime = lambda_runtime.install(self.endpoint, self.dispatcher, account_concurrency=self.lambda_concurrency)
        self._stoppers.append(lambda_runtime.stop)
        self._resetters.append(runtime.reset)

        poller = StreamPoller(self.dispatcher)
        poller.start()
        self._workers.append(poller.stop)
        self._resetters.append(poller.reset)

        self.replicator = GlobalTableReplicator(self.dispatcher)
        self.replicator.install()
        cfn_extensions.install(self.replicator)
        self._stoppers.extend([self.replicator.uninstall, cfn_extensions.uninstall])
        self._resetters.append(self.replicator.reset)

        self.scheduler = Scheduler()
        self.scheduler.start()
        self._workers.append(self.scheduler.stop)
        self._resetters.append(self.scheduler.reset)

        self.rules = RulesEngine(self.dispatcher)
        self.rules.install()
        events = iot_events.install(self.rules)
        trail = cloudtrail.install(self.dispatcher)
        self._stoppers.extend([trail.uninstall, events.uninstall, self.rules.uninstall])
        self._resetters.append(self.rules.reset)
        self.dispatcher.add_busy_probe(_executions_running)

    def set_region_down(self, region: str, down: bool) -> None:
        """A regional outage of ``region``'s API (see ``outage_switch``): its requests get 503 and global-table
        replication into and out of it is held until it is brought up again, when the held writes follow in order."""
        if down:
            self.faults.take_down(region)
        else:
            self.faults.bring_up(region)
        if self.replicator is not None:
            self.replicator.set_paused(region, down)

    def client(self, service: str, region: str, config: Config | None = None) -> Any:
        """A client with credentials of its own: Lambda invocations swap this process's environment meanwhile.

        Operations with a host prefix (StartSyncExecution's ``sync-``) reach the local endpoint as given, as
        ``iot_dr.core.aws`` clients do under ``AWS_ENDPOINT_URL``."""
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing"
        )
        as_given = Config(inject_host_prefix=False)
        return session.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            config=config.merge(as_given) if config else as_given,
        )

    def start_failover(self, directory: Path, settings: FailoverSettings | None = None) -> FailoverServices:
        """Start each region's MQTT broker, the DNS server with the failover CNAME and the Route 53 emulation.

        Call after ``deploy`` so health checks and failover records the stacks created are used. ``directory`` holds
        the CA, broker and DNS files (see ``FailoverServices``).
        """
        if self.failover is not None and self.failover.running:
            raise RuntimeError("the failover services are already running")
        services = FailoverServices(
            self.primary_region, self.secondary_region, self.client, directory, settings or FailoverSettings()
        )
        services.start()
        # Certificates IoT issues from now on are trusted by the brokers, as AWS IoT's are by its endpoints.
        certificate_issuer.use_ca(services.ca)
        route53_status.serve(services.emulator)
        self.failover = services
        self._stoppers.extend([services.stop, lambda: route53_status.serve(None)])
        return services

    def register_device_certificate(self, name: str) -> DeviceCertificate:
        """A device certificate from the failover services' CA, registered in both regions' registries."""
        if self.failover is None or not self.failover.running:
            raise RuntimeError("start the failover services first: the device certificate comes from their CA")
        return self.failover.register_device_certificate(name)

    def prepare_account(self) -> None:
        """What the guide asks of a user before deploying: registry events, fleet indexing, a CloudTrail trail."""
        iot = self.client("iot", self.primary_region)
        iot.update_event_configurations(
            eventConfigurations={event_type: {"Enabled": True} for event_type in REGISTRY_EVENT_CONFIGURATIONS}
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

    def deploy(self, progress: Progress = _quiet, *, health_checkers: bool = False, **secondary_parameters: str) -> Any:
        """Build the artifacts and deploy both regional stacks (and, with ``health_checkers``, the health-checker
        stack in each region) with the deployment launcher, as the main stack's CodeBuild project does;
        ``launch_config`` then names the deployment (for ``iot_dr.deploy.uninstall``)."""
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
            deploy_health_checkers=health_checkers,
        )
        self.launch_config = config
        self.launch = launch(config, build, progress)
        progress(f"solution deployed in {time.monotonic() - started:.1f} s")
        return self.launch

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Wait until no event, stream record, replication or workflow is in flight."""
        return self.dispatcher.wait_idle(timeout)

    def reset(self) -> None:
        """Forget everything: moto's state and every extension's."""
        self.wait_idle(30)
        self._reset_moto()
        for reset in self._resetters:
            reset()
        aws.clear_client_cache()
        self.launch = None

    def stop(self, grace: float = 10.0, *, exiting: bool = False) -> None:
        """Let in-flight work finish for up to ``grace`` seconds, stop every worker and execution, then give moto its
        code back. ``exiting``: the process ends right after and its caller has ended its child processes
        (``iot-dr local up`` on a stop request): only the temporary files are removed, the rest ends with it."""
        if not exiting:
            self._stop_in_process(grace)
        if self._build_dir is not None:
            self._build_dir.cleanup()
            self._build_dir = None

    def _stop_in_process(self, grace: float) -> None:
        # A region left down (an interrupted drill) would make the executions' clean-up below wait on 503s.
        for region in self.faults.down():
            self.set_region_down(region, False)
        if grace > 0:
            self.wait_idle(grace)
        for stop in self._workers:
            stop()
        self._workers.clear()
        if self._server is not None:
            self._abort_executions()
        self.dispatcher.shutdown()
        if self._server is not None:
            # moto's state is process-wide: a later local cloud in this process must not inherit these stacks.
            self._reset_moto()
        for stop in reversed(self._stoppers):
            stop()
        self._stoppers.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment = {}
        aws.clear_client_cache()

    def _reset_moto(self) -> None:
        with locking.SERVICE_LOCK.held():
            request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()

    def _abort_executions(self) -> None:
        """Executions still retrying would outlive the server; stop them as an operator would."""
        for region in (self.primary_region, self.secondary_region):
            sfn = self.client("stepfunctions", region)
            for machine in sfn.list_state_machines()["stateMachines"]:
                running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
                for execution in running["executions"]:
                    sfn.stop_execution(executionArn=execution["executionArn"], cause="local cloud stopped")


def _executions_running() -> bool:
    with locking.SERVICE_LOCK.held():
        for regions in list(stepfunctions_parser_backends.values()):
            for backend in list(regions.values()):
                if backend._get_executions(ExecutionStatus.RUNNING):
                    return True
    return False
