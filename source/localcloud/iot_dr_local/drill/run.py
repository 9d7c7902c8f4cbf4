"""The local drill: start the local cloud, deploy, create a fleet, run simulated devices, lose the primary, fail over,
change shadows in the secondary, restore the primary, fail back, tear everything down and report.

Exit codes: 0 the drill passed (parity before the outage, every device switched both ways, no acknowledged message
lost); 1 it ran and a check failed; 2 bad input (a value out of range, a report directory that cannot be written);
3 the drill could not start (a missing system package, a port in use, a daemon that would not start); 128 + signal
number when interrupted (the partial report is written, everything started is stopped).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from iot_dr_cli.tooling import ToolError
from iot_dr_local.drill import report, shadow_changes
from iot_dr_local.drill.devices import Clients, ClientsNotSwitched, DnsTarget
from iot_dr_local.drill.observations import Observations, Repeating, Sample, ShadowChange
from iot_dr_local.drill.options import MAX_DEVICES, DrillOptions
from iot_dr_local.local_up import StopRequested

if TYPE_CHECKING:
    from iot_dr_local.cloud import LocalCloud
    from iot_dr_local.failover import FailoverServices

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_START = 0, 1, 2, 3
MAX_CLIENTS = 50
SWITCH_TIMEOUT = 90.0
REPLICATION_TIMEOUT = 600.0
SAMPLE_INTERVAL = 0.25
SHADOW_CHANGE_INTERVAL = 0.1


class DrillError(ToolError):
    """The drill cannot go on; the message is for the user, ``exit_code`` the drill's (EXIT_FAILED by default)."""


def wait_clients(clients: Clients, role: str, since: float, what: str, timeout: float) -> None:
    """``Clients.wait``, its failure a DrillError."""
    try:
        clients.wait(role, since, what, timeout)
    except ClientsNotSwitched as err:
        raise DrillError(str(err)) from err


def _say(line: str) -> None:
    print(line, flush=True)


def _error(message: str) -> None:
    print(f"iot-dr: error: {message}", file=sys.stderr, flush=True)


def validate(options: DrillOptions) -> None:
    """Raises DrillError (EXIT_USAGE) for values out of range and a report directory that cannot be written."""
    if not 1 <= options.devices <= MAX_DEVICES:
        raise DrillError(f"--devices must be between 1 and {MAX_DEVICES}, not {options.devices}", EXIT_USAGE)
    if not 1 <= options.clients <= min(MAX_CLIENTS, options.devices):
        raise DrillError(
            f"--clients must be between 1 and {min(MAX_CLIENTS, options.devices)} (at most --devices), "
            f"not {options.clients}",
            EXIT_USAGE,
        )
    if options.primary_region == options.secondary_region:
        raise DrillError("the primary and secondary regions must differ", EXIT_USAGE)
    if not 0 <= options.outage_seconds <= 3600:
        raise DrillError(f"--outage-seconds must be between 0 and 3600, not {options.outage_seconds}", EXIT_USAGE)
    if not 0.1 <= options.health_check_interval <= 30:
        raise DrillError(
            f"--health-check-interval must be between 0.1 and 30, not {options.health_check_interval}", EXIT_USAGE
        )
    if not 1 <= options.switch_timeout <= 86400:
        raise DrillError(f"--switch-timeout must be between 1 and 86400, not {options.switch_timeout}", EXIT_USAGE)
    if not 1 <= options.mqtt_port <= 65535:
        raise DrillError(f"--mqtt-port must be between 1 and 65535, not {options.mqtt_port}", EXIT_USAGE)
    if options.root_ca is not None and not (options.root_ca.is_file() and os.access(options.root_ca, os.R_OK)):
        raise DrillError(f"--root-ca {options.root_ca}: not a readable file", EXIT_USAGE)
    try:
        options.report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=options.report_dir, prefix=".drill-write-test-"):
            pass
    except OSError as err:
        raise DrillError(f"cannot write the report to {options.report_dir}: {err.strerror or err}", EXIT_USAGE) from err


@contextmanager
def _interruptible() -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise StopRequested(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def parity(primary: Any, secondary: Any, names: Iterable[str], query: str, expected: int) -> dict[str, Any]:
    """drill.json's ``parity_before_outage``: ``iot-devices-cmp.py``'s comparison of ``names`` between the regions
    (``iot_dr.fleet.drift.Region`` each; ``query`` names the devices in the report), in parity when all ``expected``
    devices are in sync."""
    from iot_dr.fleet.drift import compare_fleet
    from iot_dr_cli.devices_cmp import report as drift_report

    drifts = compare_fleet(primary, secondary, names)
    result = drift_report(primary.name, secondary.name, query, drifts)
    return {
        "in_parity": result["inSync"] == result["compared"] == expected,
        "compared": result["compared"],
        "in_sync": result["inSync"],
        "devices": result["devices"],
        "differences": sorted(device["thingName"] for device in result["devices"]),
    }


class Runnable(Protocol):
    """A drill (local or ``--aws``): ``run`` its phases, ``tear_down`` what they made, ``outcome`` for the report."""

    outcome: str

    def run(self) -> None: ...

    def tear_down(self) -> None: ...


def execute(drill: Runnable, after_interrupt: str) -> int | None:
    """Run ``drill`` under SIGINT/SIGTERM handling, always tearing it down. None when it ran to its end; otherwise
    ``drill.outcome`` says why not, one line went to stderr (``after_interrupt`` follows an interruption) and the
    exit code is returned: 128 + the signal number, or the ``DrillError``'s. Other exceptions propagate."""
    try:
        with _interruptible():
            try:
                drill.run()
            finally:
                drill.tear_down()
    except StopRequested as stop:
        drill.outcome = f"interrupted by {stop}"
        _error(f"interrupted by {stop}; {after_interrupt}")
        return 128 + stop.signum
    except DrillError as err:
        drill.outcome = str(err)
        _error(str(err))
        return err.exit_code
    return None


def run_drill(options: DrillOptions) -> int:
    """Run the drill and write its report; returns the exit code (see the module docstring)."""
    try:
        validate(options)
    except DrillError as err:
        _error(str(err))
        return err.exit_code
    from iot_dr_local.failover import missing_packages

    missing = missing_packages()
    if missing:
        _error(f"the drill needs {' and '.join(missing)}: apt-get install --no-install-recommends {' '.join(missing)}")
        return EXIT_CANNOT_START
    drill = Drill(options)
    code = execute(drill, "everything started was stopped, the partial report follows")
    document = drill.report()
    if code is None:
        # Judged after tear-down: message counts come from the summaries the devices log as they stop.
        code = EXIT_OK if document["passed"] else EXIT_FAILED
    written = report.write(document, options.report_dir)
    _say(report.summary(document))
    _say(f"report: {', '.join(str(path) for path in written)}")
    return code


class Drill:
    mode = "local"

    def __init__(self, options: DrillOptions) -> None:
        self.options = options
        self.seen = Observations()
        self.cloud: LocalCloud | None = None
        self.services: FailoverServices | None = None
        self.clients = Clients()
        self.switches: list[Any] = []
        self.runtime_dir: Path | None = None
        self.parity: dict[str, Any] | None = None
        self.rpo: dict[str, Any] | None = None
        self.outage_changes: dict[str, Any] | None = None
        self.lag_metric: dict[str, Any] | None = None
        self.outcome = "not finished"
        self._sampler: Repeating | None = None
        self._writer: Repeating | None = None
        self._seq = 0
        self._clients: dict[tuple[str, str], Any] = {}
        # Taken before the local cloud runs Lambda handlers in this process: they swap its environment for theirs.
        self._device_environment = {
            name: value for name, value in os.environ.items() if name != "LOG_LEVEL" and not name.startswith("AWS_")
        }

    # -- phases -------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self._set_up()
        self._create_fleet()
        self._start_devices()
        self._fail_over()
        self._change_in_secondary()
        self._fail_back()
        self._read_lag_metric()
        self.outcome = "completed"

    def _set_up(self) -> None:
        from iot_dr_local.cloud import LocalCloud
        from iot_dr_local.failover_plan import FailoverSettings
        from iot_dr_local.processes import DaemonError

        options = self.options
        self.seen.mark("start")
        self.cloud = LocalCloud(options.primary_region, options.secondary_region)
        self.cloud.start()
        self.cloud.prepare_account()
        self.cloud.deploy(progress=_say, health_checkers=True)
        for region in (options.primary_region, options.secondary_region):
            for service in ("iot", "iot-data"):
                self._client(service, region)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="iot-dr-drill-"))
        # 0: free ports, never fixed ones, so a drill runs next to a local cloud or another drill.
        settings = FailoverSettings(mqtt_port=0, dns_port=0, request_interval=options.health_check_interval)
        try:
            self.services = self.cloud.start_failover(self.runtime_dir, settings)
        except DaemonError as err:
            raise DrillError(f"cannot start the failover services: {err}", EXIT_CANNOT_START) from err
        self._sampler = Repeating("drill-sampler", self._sample, SAMPLE_INTERVAL)
        self.seen.mark("set_up", "local cloud started, solution deployed, failover services running")

    def _create_fleet(self) -> None:
        from tqdm import tqdm

        from iot_dr_cli.fleet import create_fleet
        from iot_dr_local.cloud import ACCOUNT_ID

        cloud, count = self._cloud(), self.options.devices
        primary = self.options.primary_region
        _say(f"creating {count} devices in {primary} (certificates, policy, groups, classic and named shadows)")
        watcher = Repeating("drill-replication", self._watch_replication, 0.2)
        with tqdm(total=count, unit="device", file=sys.stdout, disable=None) as bar:

            def created(line: str) -> None:
                self.seen.created_at[line.split()[1]] = time.time()
                bar.update(1)

            fleet = create_fleet(
                self._client("iot", primary),
                self._client("iot-data", primary),
                primary,
                ACCOUNT_ID,
                count,
                progress=created,
            )
        self.fleet = fleet.things
        self.seen.mark("fleet_created", f"{count} devices, {fleet.shadows} shadows")
        deadline = time.monotonic() + REPLICATION_TIMEOUT
        while self.seen.backlog() and time.monotonic() < deadline:
            time.sleep(0.2)
        watcher.stop()
        cloud.wait_idle()
        # A thing reaches the secondary before its shadows, policies and groups, and a retried item can still be
        # waiting for its backoff when the cloud looks idle: compare until in parity (or late).
        self.parity = self._parity()
        while not self.parity["in_parity"] and time.monotonic() < deadline:
            time.sleep(1.0)
            self.parity = self._parity()
        self.seen.mark("parity_checked", "in parity" if self.parity["in_parity"] else "NOT in parity")
        _say(f"replication settled; the secondary is {'' if self.parity['in_parity'] else 'NOT '}in parity")

    def _start_devices(self) -> None:
        services, cloud = self._services(), self._cloud()
        dns = services.dns
        assert dns is not None
        broker = services.brokers[self.options.primary_region]
        target = DnsTarget(
            services.plan.record.name.rstrip("."), (dns.address, dns.port), broker.endpoint.port, services.ca.cert_path
        )
        assert self.runtime_dir is not None
        certificates = [
            cloud.register_device_certificate(f"drill-client-{index:02d}") for index in range(self.options.clients)
        ]
        self.clients.start(
            certificates, target, self.runtime_dir, self.options.message_interval, self._device_environment
        )
        started = self.seen.mark("clients_started", f"{len(certificates)} simulated devices")
        self._wait_clients("primary", started, "connect to the primary")
        self.seen.mark("clients_connected", "every simulated device subscribed in the primary")
        self._writer = Repeating("drill-shadow-writer", self._write_primary_shadow, SHADOW_CHANGE_INTERVAL)
        time.sleep(1.0)

    def _fail_over(self) -> None:
        """The primary region goes: its API answers 503 and global-table replication out of it stops (the local
        cloud's outage switch, ``iot_dr_local.outage_switch``), and its broker is killed. What the secondary lacks
        at that moment can no longer arrive: it is the RPO."""
        services, cloud, primary = self._services(), self._cloud(), self.options.primary_region
        if self._writer is not None:
            self._writer.stop()
        outage = self.seen.mark("outage", f"API of {primary} down (503), its broker killed")
        cloud.set_region_down(primary, True)
        services.brokers[primary].stop(graceful=False)
        self.rpo, missing = self._unreplicated_at(outage)
        self.rpo["primary_api"] = self._probe_api(primary)
        self._wait_clients("secondary", outage, "fail over to the secondary")
        self.seen.mark("failover_complete", "every simulated device subscribed in the secondary")
        self.rpo["lost"] = self._still_unreplicated(missing)

    def _change_in_secondary(self) -> None:
        """Shadow changes made in the secondary while failed over: one-way replication never copies them back."""
        iot_data = self._client("iot-data", self.options.secondary_region)
        things = self.fleet[: max(1, min(10, len(self.fleet)))]
        for thing in things:
            self._update_shadow(iot_data, thing, self.options.secondary_region)
        self.outage_changes = {"made": len(things), "things": things}
        time.sleep(self.options.outage_seconds)

    def _fail_back(self) -> None:
        services = self._services()
        restore = self.seen.mark("restore", f"API of {self.options.primary_region} up, its broker started again")
        self._cloud().set_region_down(self.options.primary_region, False)
        services.brokers[self.options.primary_region].start()
        self._wait_clients("primary", restore, "fail back to the primary")
        self.seen.mark("failback_complete", "every simulated device subscribed in the primary")
        assert self.outage_changes is not None
        self.outage_changes.update(self._fate_of_outage_changes())
        time.sleep(1.0)

    def _read_lag_metric(self) -> None:
        """The lag the secondary's workers reported to CloudWatch (the local cloud records their EMF lines)."""
        from iot_dr_local.drill.lag_metric import read_lag_metric

        state_table = self._cloud().launch.secondary_outputs["ReplicationStateTableName"]
        cloudwatch = self._client("cloudwatch", self.options.secondary_region)
        start = self.seen.milestones[0].at
        self.lag_metric = read_lag_metric(cloudwatch, state_table, start, time.time())

    def tear_down(self) -> None:
        """Stop everything the drill started, in any phase; collect the devices' summaries first."""
        for repeating in (self._writer, self._sampler):
            if repeating is not None:
                repeating.stop()
        self.clients.stop(self.options.report_dir / "devices")
        self.seen.mark("clients_stopped")
        self.switches = list(self.services.emulator.switches) if self.services and self.services.emulator else []
        if self.cloud is not None:
            self.cloud.stop()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        self.seen.mark("torn_down")

    # -- observing ----------------------------------------------------------------------------------------------

    def _check_ids(self) -> tuple[str, str]:
        plan = self._services().plan
        assert plan.primary.health_check and plan.secondary.health_check
        return plan.primary.health_check.health_check_id, plan.secondary.health_check.health_check_id

    def _sample(self) -> None:
        services = self._services()
        emulator = services.emulator
        assert emulator is not None
        primary_id, secondary_id = self._check_ids()
        self.seen.samples.append(
            Sample(
                time.time(),
                emulator.healthy(primary_id),
                emulator.healthy(secondary_id),
                emulator.answer(services.plan.record.name).rstrip("."),
                self.seen.backlog(),
            )
        )

    def _watch_replication(self) -> None:
        iot = self._client("iot", self.options.secondary_region)
        now = time.time()
        for page in iot.get_paginator("list_things").paginate():
            for thing in page["things"]:
                self.seen.replicated_at.setdefault(thing["thingName"], now)

    def _parity(self) -> dict[str, Any]:
        """What ``iot-devices-cmp.py`` reports for every device of the fleet in either region."""
        from iot_dr.fleet.drift import Region
        from iot_dr.fleet.enumeration import thing_names
        from iot_dr_cli.fleet import DEMO_THING_PREFIX

        query = f"thingName:{DEMO_THING_PREFIX}*"
        primary = Region.limited(self.options.primary_region)
        secondary = Region.limited(self.options.secondary_region)
        names = {*thing_names(primary.iot, query), *thing_names(secondary.iot, query)}
        return parity(primary, secondary, names, query, len(self.fleet))

    def _update_shadow(self, iot_data: Any, thing: str, region: str) -> ShadowChange:
        self._seq += 1
        change = shadow_changes.write_change(iot_data, thing, region, self._seq)
        self.seen.shadow_changes.append(change)
        return change

    def _write_primary_shadow(self) -> None:
        iot_data = self._client("iot-data", self.options.primary_region)
        self._update_shadow(iot_data, self.fleet[self._seq % len(self.fleet)], self.options.primary_region)

    def _seq_in(self, region: str) -> shadow_changes.SeqOf:
        iot_data = self._client("iot-data", region)
        return lambda thing: shadow_changes.read_seq(iot_data, thing)

    def _unreplicated_at(self, outage: float) -> tuple[dict[str, Any], list[ShadowChange]]:
        """Primary shadow changes the secondary lacked right after the outage began (the RPO): the figures, and the
        lacking changes."""
        changes = [change for change in self.seen.shadow_changes if change.region == self.options.primary_region]
        checked_at = time.time()
        lacking = shadow_changes.missing(changes, self._seq_in(self.options.secondary_region))
        figures = shadow_changes.backlog(changes, lacking, outage)
        return {**figures, "checked_seconds_after_outage": checked_at - outage}, lacking

    def _still_unreplicated(self, lacking: list[ShadowChange]) -> int:
        """Of the changes lacking at the outage, those still not applied once every device failed over: the ones
        that had not left the primary (the rest were already in the secondary's table, waiting to be applied)."""
        return len(shadow_changes.missing(lacking, self._seq_in(self.options.secondary_region)))

    def _probe_api(self, region: str) -> str:
        """What one call to ``region``'s IoT API answers now, without retries: "ok" or the error code."""
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        from iot_dr.core.aws import error_code

        impatient = self._cloud().client("iot", region, Config(retries={"max_attempts": 1}))
        try:
            impatient.list_things(maxResults=1)
        except ClientError as err:
            return error_code(err)
        except BotoCoreError as err:
            return type(err).__name__
        return "ok"

    def _fate_of_outage_changes(self) -> dict[str, Any]:
        made = [c for c in self.seen.shadow_changes if c.region == self.options.secondary_region]
        primary, secondary = self.options.primary_region, self.options.secondary_region
        return shadow_changes.fate(made, self._seq_in(primary), self._seq_in(secondary))

    def _wait_clients(self, role: str, since: float, what: str) -> None:
        wait_clients(self.clients, role, since, what, SWITCH_TIMEOUT)

    # -- results ------------------------------------------------------------------------------------------------

    def _client(self, service: str, region: str) -> Any:
        """One client per service and region, made in the main thread: the drill's threads share them (clients are
        thread-safe; creating them concurrently is not)."""
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._cloud().client(service, region)
        return self._clients[key]

    def _cloud(self) -> LocalCloud:
        assert self.cloud is not None
        return self.cloud

    def _services(self) -> FailoverServices:
        assert self.services is not None
        return self.services

    def switch_figures(self) -> list[dict[str, Any]]:
        """drill.json's ``switches``: each failover-record switch the Route 53 emulation made, timed from its
        trigger (the outage or the restore) through the health check's verdict to the DNS update."""
        at = {m.name: m.at for m in self.seen.milestones}
        primary_target = self.services.plan.record.primary_target if self.services else ""
        figures = []
        for switch in self.switches:
            phase = "failover" if switch.from_target == primary_target else "failback"
            figures.append(
                report.switch_figure(
                    phase,
                    switch.from_target,
                    switch.to_target,
                    switch.cause.health_check_id,
                    at.get("outage" if phase == "failover" else "restore"),
                    switch.cause.decided_at,
                    switch.dns_updated_at,
                )
            )
        return figures

    def report(self) -> dict[str, Any]:
        return report.build(self)
