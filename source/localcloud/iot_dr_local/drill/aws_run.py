"""The drill against a real deployment (``iot-dr drill --aws``): the same phases as on the local cloud, with the
outage simulated safely.

Phases: find the deployment (``deployment``); create ``--devices`` test devices in the primary (things named
``DEVICE_PREFIX<run>-NNNN`` with a classic shadow; the first ``--clients`` of them with an AWS IoT certificate and
the run's policy, ``credentials``) and time each one's replication; check their parity; start the simulated devices
(``iot-dr-pubsub.py --dr-mode`` with those certificates, following the failover record) and keep changing shadows in
the primary; make the primary's Route 53 health check fail (``health_check_fault``: the guide's "Failover testing"
edit), time until the failover record answers the secondary and until every simulated device published there;
change shadows in the secondary; restore the health check and time the failback the same way; read the secondary's
``ReplicationLag`` metric; delete the test devices with their certificates and the run's policy (in the primary;
replication deletes them in the secondary, and the drill deletes what it left there).

Nothing else in the account is changed, and the health check is restored whatever happens: in ``finally`` after an
error, SIGINT or SIGTERM, and from the record on disk by ``iot-dr drill --restore`` after the process was killed.
Every client is ``iot_dr.core.aws``'s, so ``AWS_ENDPOINT_URL`` points the drill at any endpoint (the tests use the
local cloud's). The primary keeps running while "failed over": its changes keep replicating, so the RPO figures
here are the backlog at the moment of the switch, not changes lost.

The timeline samples the failover record's answer and each health check's status every ``SAMPLE_INTERVAL`` seconds;
while a switch is awaited the primary's health check and the record are polled every ``POLL_INTERVAL`` seconds, so
detection and DNS times are known to within that. GetHealthCheckStatus is meant for diagnosis, not high rates: the
drill stays at or below three calls a second, under Route 53's five requests a second per account
(https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html#limits-api-requests).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from iot_dr.core import aws
from iot_dr.fleet.removal import delete_device
from iot_dr.secondary.replicate.context import certificate_id_of, describe_or_none, ignore_not_found, paginate
from iot_dr_local.drill import credentials, health_check_fault, report, shadow_changes
from iot_dr_local.drill.devices import Clients, DnsTarget
from iot_dr_local.drill.health_check_fault import FaultError, HealthCheckFault
from iot_dr_local.drill.observations import Observations, Repeating, Sample
from iot_dr_local.drill.options import DrillOptions
from iot_dr_local.drill.run import (
    EXIT_FAILED,
    EXIT_OK,
    SHADOW_CHANGE_INTERVAL,
    DrillError,
    _error,
    _say,
    execute,
    parity,
    validate,
    wait_clients,
)
from iot_dr_local.drill.run_record import RunRecord, RunRecordError

DEVICE_PREFIX = "iot-dr-drill-"
DRILL_ATTRIBUTE = "iotDrDrill"
POLL_INTERVAL = 0.5
SAMPLE_INTERVAL = 2.0
# Route 53 considers an endpoint healthy when more than 18 % of its checkers report it healthy
# (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html).
HEALTHY_SHARE = 0.18


def run_aws_drill(options: DrillOptions) -> int:
    """Run the drill against the deployment; returns the exit code (as ``run.run_drill``)."""
    try:
        validate(options)
    except DrillError as err:
        _error(str(err))
        return err.exit_code
    drill = AwsDrill(options)
    stopped: int | None = EXIT_FAILED
    try:
        stopped = execute(drill, "the health check is as it was and the test devices were deleted")
    except FaultError as err:
        drill.outcome = str(err)
        _error(str(err))
    except (BotoCoreError, ClientError, ResponseParserError) as err:
        # No credentials, an unreachable endpoint, a denied or failed call, an answer that is not the API's (as an
        # endpoint that does not serve the region gives): one line, never a traceback.
        drill.outcome = f"{type(err).__name__}: {err}"
        _error(drill.outcome)
    if (options.report_dir / health_check_fault.RECORD_FILE).exists():
        _error(
            f"the primary's health check may still carry the drill's edit: run iot-dr drill --restore --report "
            f"{options.report_dir}"
        )
    document = drill.report()
    written = report.write(document, options.report_dir)
    _say(report.summary(document))
    _say(f"report: {', '.join(str(path) for path in written)}")
    if stopped is not None:
        return stopped
    return EXIT_OK if document["passed"] else EXIT_FAILED


def restore_recorded(options: DrillOptions) -> int:
    """``iot-dr drill --restore``: from the records a killed drill left in the report directory, undo its
    health-check edit, delete its test devices, their certificates and the run's policy in both regions, and remove
    its runtime directory (the simulated devices' keys)."""
    try:
        fault = HealthCheckFault.read(options.report_dir)
        run = RunRecord.read(options.report_dir)
    except (FaultError, RunRecordError) as err:
        _error(str(err))
        return EXIT_FAILED
    if fault is None and run is None:
        _say(f"nothing to restore: no drill's run or health-check record in {options.report_dir}")
        return EXIT_OK
    run_id = run.run_id if run is not None else fault.run_id if fault is not None else ""
    regions = (run.primary_region, run.secondary_region) if run else (options.primary_region, options.secondary_region)
    try:
        if fault is not None:
            route53 = aws.client("route53", regions[0])
            changed = health_check_fault.restore(route53, fault, options.report_dir)
            _say(f"health check {fault.health_check_id}: {'restored' if changed else 'already as it was'}")
        deleted = 0
        for region in regions:
            iot, iot_data = aws.client("iot", region), aws.client("iot-data", region)
            for name in _run_things(iot, run_id):
                delete_device(iot, iot_data, name)
                deleted += 1
            _delete_policy(iot, credentials.policy_name(_run_prefix(run_id)))
    except (BotoCoreError, ClientError) as err:
        _error(f"{type(err).__name__}: {err}")
        return EXIT_FAILED
    if run is not None:
        shutil.rmtree(run.runtime_dir, ignore_errors=True)
        RunRecord.remove(options.report_dir)
    _say(f"test devices of run {run_id} deleted: {deleted}")
    return EXIT_OK


def _run_prefix(run_id: str) -> str:
    return f"{DEVICE_PREFIX}{run_id}-"


def _run_things(iot: Any, run_id: str) -> list[str]:
    """The things a drill run created (its attribute, and its name prefix: nothing else is ever touched)."""
    prefix = _run_prefix(run_id)
    return [
        thing["thingName"]
        for page in iot.get_paginator("list_things").paginate(attributeName=DRILL_ATTRIBUTE, attributeValue=run_id)
        for thing in page["things"]
        if thing["thingName"].startswith(prefix)
    ]


class AwsDrill:
    mode = "aws"

    def __init__(self, options: DrillOptions) -> None:
        self.options = options
        # Unique per run: its test devices, and only they, carry it.
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
        self.seen = Observations()
        self.target: Any = None
        self.record = options.record.rstrip(".") if options.record else ""
        self.things: list[str] = []
        self.certificates: list[Any] = []
        self.clients = Clients()
        self.parity: dict[str, Any] | None = None
        self.rpo: dict[str, Any] | None = None
        self.switches: list[dict[str, Any]] = []
        self._answer_before = ""
        self.outage_changes: dict[str, Any] | None = None
        self.lag_metric: dict[str, Any] | None = None
        self.cleanup: dict[str, Any] = {}
        self.fault: HealthCheckFault | None = None
        self.dns_error: str | None = None
        self.outcome = "not finished"
        self._writer: Repeating | None = None
        self._sampler: Repeating | None = None
        self._runtime_dir: Path | None = None
        self._seq = 0
        primary, secondary = options.primary_region, options.secondary_region
        self.iot = {region: aws.client("iot", region) for region in (primary, secondary)}
        self.iot_data = {region: aws.client("iot-data", region) for region in (primary, secondary)}
        self.route53 = aws.client("route53", primary)
        # The devices' own environment: no AWS credentials, they authenticate with their certificates.
        self._device_environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    # -- phases -------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self._discover()
        self._create_devices()
        self._start_clients()
        self._fail_over()
        self._change_in_secondary()
        self._fail_back()
        self._read_lag_metric()
        self.outcome = "completed"

    def _discover(self) -> None:
        from iot_dr_cli.operations import OperatorError
        from iot_dr_local.drill.deployment import find_target

        self.seen.mark("start")
        options = self.options
        try:
            self.target = find_target(
                options.primary_region, options.secondary_region, self.route53, options.stack_postfix
            )
        except OperatorError as err:
            # The operator tools' advice names their own --stack option; the drill's is --stack-postfix.
            raise DrillError(f"{str(err).split(';')[0]}; name the deployment with --stack-postfix") from err
        if not self.record:
            if not self.target.record_name:
                raise DrillError(
                    f"no failover record uses health check {self.target.health_check_id}; name it with --record"
                )
            self.record = self.target.record_name
        from iot_dr_cli.pubsub import EndpointResolver

        self.resolver = EndpointResolver(options.dns_server)
        self._answer_before = self._answer() or ""
        if self._region_of(self._answer_before) != options.primary_region:
            raise DrillError(
                f"{self.record} does not answer the primary region now ({self.dns_error or 'another answer'}): the "
                "drill starts from there"
            )
        self._sampler = Repeating("drill-sampler", self._sample, SAMPLE_INTERVAL)
        self.seen.mark(
            "set_up",
            f"stacks {self.target.primary_stack}, {self.target.secondary_stack}, health check "
            f"{self.target.health_check_id}, record {self.record}",
        )
        _say(f"deployment found: {self.seen.milestones[-1].detail}")

    def _create_devices(self) -> None:
        from tqdm import tqdm

        primary, secondary = self.options.primary_region, self.options.secondary_region
        iot = self.iot[primary]
        prefix = _run_prefix(self.run_id)
        _say(
            f"creating {self.options.devices} test devices {prefix}* in {primary}, {self.options.clients} of them "
            "with a certificate for a simulated device"
        )
        self._runtime_dir = Path(tempfile.mkdtemp(prefix="iot-dr-drill-"))
        # Before anything is created: a run killed from here on can be cleaned up by --restore.
        RunRecord(self.run_id, primary, secondary, str(self._runtime_dir)).write(self.options.report_dir)
        policy = credentials.policy_name(prefix)
        watcher = Repeating("drill-replication", self._watch_replication, POLL_INTERVAL)
        try:
            with tqdm(total=self.options.devices, unit="device", file=sys.stdout, disable=None) as bar:
                for index in range(self.options.devices):
                    name = f"{prefix}{index:04d}"
                    iot.create_thing(thingName=name, attributePayload={"attributes": {DRILL_ATTRIBUTE: self.run_id}})
                    self.things.append(name)
                    if index < self.options.clients:
                        if index == 0:
                            self._create_policy(policy)
                        self.certificates.append(credentials.issue(iot, name, policy, self._runtime_dir))
                    self.seen.created_at[name] = time.time()
                    self._update_shadow(name, primary)
                    bar.update(1)
            self.seen.mark("fleet_created", f"{len(self.things)} test devices, {len(self.certificates)} certificates")
            deadline = time.monotonic() + self.options.switch_timeout
            while self.seen.backlog() and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL)
        finally:
            watcher.stop()
        if self.seen.backlog():
            raise DrillError(f"{self.seen.backlog()} test devices did not reach {secondary} in time")
        # A thing reaches the secondary before its shadow, certificate and policy: compare until in parity (or late).
        self.parity = self._parity()
        while not self.parity["in_parity"] and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            self.parity = self._parity()
        self.seen.mark("parity_checked", "in parity" if self.parity["in_parity"] else "NOT in parity")
        _say(f"replicated; the secondary is {'' if self.parity['in_parity'] else 'NOT '}in parity")

    def _create_policy(self, name: str) -> None:
        """The run's policy, for this account and partition (read from the first test thing's ARN)."""
        iot = self.iot[self.options.primary_region]
        arn = iot.describe_thing(thingName=self.things[0])["thingArn"]
        _, partition, _, _, account_id, _ = arn.split(":", 5)
        iot.create_policy(policyName=name, policyDocument=credentials.policy_document(partition, account_id))

    def _start_clients(self) -> None:
        options = self.options
        assert self._runtime_dir is not None
        target = DnsTarget(self.record, options.dns_server, options.mqtt_port, options.root_ca)
        self.clients.start(
            self.certificates, target, self._runtime_dir, options.message_interval, self._device_environment
        )
        started = self.seen.mark("clients_started", f"{len(self.certificates)} simulated devices")
        wait_clients(self.clients, "primary", started, "connect to the primary", options.switch_timeout)
        self.seen.mark("clients_connected", "every simulated device subscribed in the primary")
        self._writer = Repeating("drill-shadow-writer", self._write_primary_shadow, SHADOW_CHANGE_INTERVAL)
        time.sleep(1.0)

    def _fail_over(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        outage = self.seen.mark("outage", f"health check {self.target.health_check_id} made to fail")
        self.fault = health_check_fault.fail(
            self.route53, self.target.health_check_id, self.options.report_dir, self.run_id
        )
        self.rpo = self._backlog_at(outage)
        self._wait_switch("failover", self.options.secondary_region, outage)
        wait_clients(self.clients, "secondary", outage, "fail over to the secondary", self.options.switch_timeout)
        self.seen.mark("failover_complete", "every simulated device subscribed in the secondary")

    def _change_in_secondary(self) -> None:
        things = self.things[: max(1, min(10, len(self.things)))]
        for thing in things:
            self._update_shadow(thing, self.options.secondary_region)
        self.outage_changes = {"made": len(things), "things": things}
        time.sleep(self.options.outage_seconds)

    def _fail_back(self) -> None:
        restore = self.seen.mark("restore", f"health check {self.target.health_check_id} restored")
        self._restore_health_check()
        self._wait_switch("failback", self.options.primary_region, restore)
        wait_clients(self.clients, "primary", restore, "fail back to the primary", self.options.switch_timeout)
        self.seen.mark("failback_complete", "every simulated device subscribed in the primary")
        assert self.outage_changes is not None
        made = [c for c in self.seen.shadow_changes if c.region == self.options.secondary_region]
        primary, secondary = self.options.primary_region, self.options.secondary_region
        self.outage_changes.update(shadow_changes.fate(made, self._seq_in(primary), self._seq_in(secondary)))

    def _read_lag_metric(self) -> None:
        from iot_dr_local.drill.lag_metric import read_lag_metric

        cloudwatch = aws.client("cloudwatch", self.options.secondary_region)
        self.lag_metric = read_lag_metric(cloudwatch, self.target.state_table, self.seen.milestones[0].at, time.time())

    def tear_down(self) -> None:
        """Restore the health check first, stop the devices, then delete the test devices: in every phase, and on
        interruption. The private keys go with the runtime directory."""
        for repeating in (self._writer, self._sampler):
            if repeating is not None:
                repeating.stop()
        try:
            self._restore_health_check()
        finally:
            self.clients.stop(self.options.report_dir / "devices")
            self.seen.mark("clients_stopped")
            try:
                if self.things:
                    self.cleanup = self._delete_devices()
                RunRecord.remove(self.options.report_dir)
            finally:
                if self._runtime_dir is not None:
                    shutil.rmtree(self._runtime_dir, ignore_errors=True)
        self.seen.mark("torn_down")

    def _restore_health_check(self) -> None:
        if self.fault is not None:
            health_check_fault.restore(self.route53, self.fault, self.options.report_dir)
            self.fault = None

    # -- observing ----------------------------------------------------------------------------------------------

    def _answer(self) -> str | None:
        """The failover record's target now; None when the lookup failed (kept in ``dns_error``)."""
        import dns.exception

        try:
            target, _ = self.resolver.cname(self.record)
        except dns.exception.DNSException as err:
            self.dns_error = f"{type(err).__name__}: {err}"
            return None
        return target

    def _region_of(self, target: str) -> str | None:
        """The region whose endpoint ``target`` (a failover record's answer) names; None when it names neither."""
        labels = target.lower().split(".")
        return next((r for r in (self.options.primary_region, self.options.secondary_region) if r in labels), None)

    def _wait_switch(self, phase: str, region: str, trigger: float) -> None:
        """Poll the primary's health check until its verdict changed and the record until it answers ``region``;
        the switch's figures go to ``switches``. The verdict is polled first, so it is never seen after the answer."""
        healthy_after = region == self.options.primary_region
        deadline = time.monotonic() + self.options.switch_timeout
        decided: float | None = None
        while time.monotonic() < deadline:
            if decided is None and self._healthy(self.target.health_check_id) is healthy_after:
                decided = time.time()
            target = self._answer()
            if target is not None and self._region_of(target) == region:
                self.switches.append(
                    report.switch_figure(
                        phase, self._answer_before, target, self.target.health_check_id, trigger, decided, time.time()
                    )
                )
                self._answer_before = target
                return
            time.sleep(POLL_INTERVAL)
        raise DrillError(f"{self.record} did not answer {region} within {self.options.switch_timeout:.0f} s")

    def _healthy(self, health_check_id: str | None) -> bool | None:
        """Route 53's verdict from the checkers' latest observations; None without a health check or observations."""
        if health_check_id is None:
            return None
        observations = self.route53.get_health_check_status(HealthCheckId=health_check_id)["HealthCheckObservations"]
        if not observations:
            return None
        succeeded = sum(1 for o in observations if o.get("StatusReport", {}).get("Status", "").startswith("Success"))
        return succeeded / len(observations) > HEALTHY_SHARE

    def _sample(self) -> None:
        self.seen.samples.append(
            Sample(
                time.time(),
                self._healthy(self.target.health_check_id),
                self._healthy(self.target.secondary_health_check_id),
                self._answer() or "",
                self.seen.backlog(),
            )
        )

    def _watch_replication(self) -> None:
        now = time.time()
        for name in _run_things(self.iot[self.options.secondary_region], self.run_id):
            self.seen.replicated_at.setdefault(name, now)

    def _parity(self) -> dict[str, Any]:
        from iot_dr.fleet.drift import Region

        primary = Region.limited(self.options.primary_region)
        secondary = Region.limited(self.options.secondary_region)
        return parity(primary, secondary, self.things, f"thingName:{_run_prefix(self.run_id)}*", len(self.things))

    def _update_shadow(self, thing: str, region: str) -> None:
        self._seq += 1
        self.seen.shadow_changes.append(shadow_changes.write_change(self.iot_data[region], thing, region, self._seq))

    def _write_primary_shadow(self) -> None:
        self._update_shadow(self.things[self._seq % len(self.things)], self.options.primary_region)

    def _seq_in(self, region: str) -> shadow_changes.SeqOf:
        iot_data = self.iot_data[region]
        return lambda thing: shadow_changes.read_seq(iot_data, thing)

    def _backlog_at(self, outage: float) -> dict[str, Any]:
        """Primary shadow changes not yet applied in the secondary when the health check was made to fail."""
        changes = [c for c in self.seen.shadow_changes if c.region == self.options.primary_region]
        lacking = shadow_changes.missing(changes, self._seq_in(self.options.secondary_region))
        return {
            **shadow_changes.backlog(changes, lacking, outage),
            "note": "simulated outage: the primary kept replicating, so these are the backlog, not lost changes",
        }

    def _delete_devices(self) -> dict[str, Any]:
        """Delete the test devices (with their certificates and, once unused, the run's policy) in the primary and
        wait for replication to delete them in the secondary; delete there what it has not within the timeout. Only
        what this run created is touched."""
        primary, secondary = self.options.primary_region, self.options.secondary_region
        for name in self.things:
            delete_device(self.iot[primary], self.iot_data[primary], name)
        policy = credentials.policy_name(_run_prefix(self.run_id))
        _delete_policy(self.iot[primary], policy)
        deadline = time.monotonic() + self.options.switch_timeout
        left = list(self.things)
        while left and time.monotonic() < deadline:
            left = [name for name in left if _exists(self.iot[secondary].describe_thing, thingName=name)]
            if left:
                time.sleep(POLL_INTERVAL)
        for name in left:
            delete_device(self.iot[secondary], self.iot_data[secondary], name)
        certificates_left = [
            c.certificate_id
            for c in self.certificates
            if _exists(self.iot[secondary].describe_certificate, certificateId=c.certificate_id)
        ]
        for certificate_id in certificates_left:
            _delete_certificate(self.iot[secondary], certificate_id)
        policy_left = _delete_policy(self.iot[secondary], policy)
        return {
            "deleted": len(self.things),
            "certificates_deleted": len(self.certificates),
            "deleted_in_secondary_by_the_drill": {
                "things": left,
                "certificates": certificates_left,
                "policy": policy if policy_left else None,
            },
        }

    # -- results ------------------------------------------------------------------------------------------------

    def switch_figures(self) -> list[dict[str, Any]]:
        """drill.json's ``switches``: from the trigger (health check made to fail, or restored) through the first
        poll that saw its verdict changed to the first that saw the record answer the other region."""
        return self.switches

    def report(self) -> dict[str, Any]:
        from dataclasses import asdict

        document = report.build(self)
        document["target"] = None if self.target is None else {**asdict(self.target), "record_name": self.record}
        document["cleanup"] = self.cleanup
        return document


def _exists(call: Any, **kwargs: Any) -> bool:
    return describe_or_none(call, **kwargs) is not None


def _delete_certificate(iot: Any, certificate_id: str) -> None:
    """A certificate of the run: detached from its things and policies, deactivated, deleted (gone already: done)."""
    described = describe_or_none(iot.describe_certificate, certificateId=certificate_id)
    if described is None:
        return
    arn = described["certificateDescription"]["certificateArn"]
    for thing in paginate(iot, "list_principal_things", "things", principal=arn):
        ignore_not_found(iot.detach_thing_principal, thingName=thing, principal=arn)
    for policy in paginate(iot, "list_attached_policies", "policies", target=arn):
        ignore_not_found(iot.detach_policy, policyName=policy["policyName"], target=arn)
    ignore_not_found(iot.update_certificate, certificateId=certificate_id, newStatus="INACTIVE")
    ignore_not_found(iot.delete_certificate, certificateId=certificate_id)


def _delete_policy(iot: Any, name: str) -> bool:
    """The run's policy with the certificates it is still attached to (only the run's are: a run killed before it
    attached one of them to its thing leaves it so); whether the policy existed."""
    if describe_or_none(iot.get_policy, policyName=name) is None:
        return False
    for target in list(paginate(iot, "list_targets_for_policy", "targets", policyName=name)):
        certificate_id = certificate_id_of(target)
        if certificate_id is not None:
            _delete_certificate(iot, certificate_id)
        else:
            ignore_not_found(iot.detach_policy, policyName=name, target=target)
    ignore_not_found(iot.delete_policy, policyName=name)
    return True
