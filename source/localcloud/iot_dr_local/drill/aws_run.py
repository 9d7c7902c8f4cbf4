"""The drill against a real deployment (``iot-dr drill --aws``): the same phases as on the local cloud, with the
outage simulated safely.

Phases: find the deployment (``deployment``); create ``--devices`` test devices in the primary (things named
``DEVICE_PREFIX<run>-NNNN`` with a classic shadow) and time each one's replication; check their parity; keep changing
their shadows in the primary; make the primary's Route 53 health check fail (``health_check_fault``: the guide's
"Failover testing" edit) and time until the failover record answers the secondary; change shadows in the secondary;
restore the health check and time the failback; read the secondary's ``ReplicationLag`` metric; delete the test
devices (in the primary; replication deletes them in the secondary, and the drill deletes any it left there).

Nothing else in the account is changed, and the health check is restored whatever happens: in ``finally`` after an
error, SIGINT or SIGTERM, and from the record on disk by ``iot-dr drill --restore`` after the process was killed.
Every client is ``iot_dr.core.aws``'s, so ``AWS_ENDPOINT_URL`` points the drill at any endpoint (the tests use the
local cloud's). The primary keeps running while "failed over": its changes keep replicating, so the RPO figures
here are the backlog at the moment of the switch, not changes lost.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from iot_dr.core import aws
from iot_dr.secondary.replicate.context import describe_or_none, ignore_not_found
from iot_dr_local.drill import health_check_fault, shadow_changes
from iot_dr_local.drill.health_check_fault import FaultError, HealthCheckFault
from iot_dr_local.drill.observations import Observations, Repeating
from iot_dr_local.drill.options import DrillOptions
from iot_dr_local.drill.report import replication_figures
from iot_dr_local.drill.run import (
    EXIT_FAILED,
    EXIT_OK,
    SHADOW_CHANGE_INTERVAL,
    DrillError,
    _error,
    _say,
    execute,
    validate,
)

DEVICE_PREFIX = "iot-dr-drill-"
DRILL_ATTRIBUTE = "iotDrDrill"
POLL_INTERVAL = 0.5


def run_aws_drill(options: DrillOptions) -> int:
    """Run the drill against the deployment; returns the exit code (as ``run.run_drill``)."""
    try:
        validate(options)
    except DrillError as err:
        _error(str(err))
        return err.exit_code
    drill = AwsDrill(options)
    code = EXIT_FAILED
    try:
        stopped = execute(drill, "the health check was restored and the test devices deleted")
        code = stopped if stopped is not None else EXIT_OK if drill.passed() else EXIT_FAILED
    except FaultError as err:
        drill.outcome = str(err)
        _error(str(err))
        code = EXIT_FAILED
    except (BotoCoreError, ClientError) as err:
        # No credentials, an unreachable endpoint, a denied or failed call: one line, never a traceback.
        drill.outcome = f"{type(err).__name__}: {err}"
        _error(drill.outcome)
        code = EXIT_FAILED
    if (options.report_dir / health_check_fault.RECORD_FILE).exists():
        _error(
            f"the primary's health check may still carry the drill's edit: run iot-dr drill --restore --report "
            f"{options.report_dir}"
        )
    document = drill.report()
    path = options.report_dir / "drill.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    for line in summary_lines(document):
        _say(line)
    _say(f"report: {path}")
    return code


def restore_recorded(options: DrillOptions) -> int:
    """``iot-dr drill --restore``: undo the health-check edit recorded in the report directory by a killed drill,
    and delete that run's test devices in both regions."""
    try:
        fault = HealthCheckFault.read(options.report_dir)
    except FaultError as err:
        _error(str(err))
        return EXIT_FAILED
    if fault is None:
        _say(f"nothing to restore: no drill's health-check record in {options.report_dir}")
        return EXIT_OK
    try:
        changed = health_check_fault.restore(aws.client("route53", options.primary_region), fault, options.report_dir)
        _say(f"health check {fault.health_check_id}: {'restored' if changed else 'already as it was'}")
        deleted = 0
        for region in (options.primary_region, options.secondary_region):
            iot, iot_data = aws.client("iot", region), aws.client("iot-data", region)
            for name in _run_things(iot, fault.run_id):
                _delete_thing(iot, iot_data, name)
                deleted += 1
    except (BotoCoreError, ClientError) as err:
        _error(f"{type(err).__name__}: {err}")
        return EXIT_FAILED
    _say(f"test devices of run {fault.run_id} deleted: {deleted}")
    return EXIT_OK


def _run_things(iot: Any, run_id: str) -> list[str]:
    """The things a drill run created (its attribute, and its name prefix: nothing else is ever touched)."""
    prefix = f"{DEVICE_PREFIX}{run_id}-"
    return [
        thing["thingName"]
        for page in iot.get_paginator("list_things").paginate(attributeName=DRILL_ATTRIBUTE, attributeValue=run_id)
        for thing in page["things"]
        if thing["thingName"].startswith(prefix)
    ]


class AwsDrill:
    def __init__(self, options: DrillOptions) -> None:
        self.options = options
        # Unique per run: its test devices, and only they, carry it.
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
        self.seen = Observations()
        self.target: Any = None
        self.things: list[str] = []
        self.parity: dict[str, Any] | None = None
        self.rpo: dict[str, Any] | None = None
        self.switches: dict[str, dict[str, Any]] = {}
        self.outage_changes: dict[str, Any] | None = None
        self.lag_metric: dict[str, Any] | None = None
        self.cleanup: dict[str, Any] = {}
        self.fault: HealthCheckFault | None = None
        self.dns_error: str | None = None
        self.outcome = "not finished"
        self._writer: Repeating | None = None
        self._seq = 0
        primary, secondary = options.primary_region, options.secondary_region
        self.iot = {region: aws.client("iot", region) for region in (primary, secondary)}
        self.iot_data = {region: aws.client("iot-data", region) for region in (primary, secondary)}
        self.route53 = aws.client("route53", primary)

    # -- phases -------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self._discover()
        self._create_devices()
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
        if options.record:
            self.record = options.record.rstrip(".")
        elif self.target.record_name:
            self.record = self.target.record_name
        else:
            raise DrillError(
                f"no failover record uses health check {self.target.health_check_id}; name it with --record"
            )
        from iot_dr_cli.pubsub import EndpointResolver

        self.resolver = EndpointResolver(options.dns_server)
        if self._answer_region() != options.primary_region:
            raise DrillError(
                f"{self.record} does not answer the primary region now ({self.dns_error or 'another answer'}): the "
                "drill starts from there"
            )
        self.seen.mark(
            "set_up",
            f"stacks {self.target.primary_stack}, {self.target.secondary_stack}, health check "
            f"{self.target.health_check_id}, record {self.record}",
        )
        _say(f"deployment found: {self.seen.milestones[-1].detail}")

    def _create_devices(self) -> None:
        primary, secondary = self.options.primary_region, self.options.secondary_region
        _say(f"creating {self.options.devices} test devices {DEVICE_PREFIX}{self.run_id}-* in {primary}")
        watcher = Repeating("drill-replication", self._watch_replication, POLL_INTERVAL)
        try:
            for index in range(self.options.devices):
                name = f"{DEVICE_PREFIX}{self.run_id}-{index:04d}"
                self.iot[primary].create_thing(
                    thingName=name, attributePayload={"attributes": {DRILL_ATTRIBUTE: self.run_id}}
                )
                self.things.append(name)
                self.seen.created_at[name] = time.time()
                self._update_shadow(name, primary)
            self.seen.mark("fleet_created", f"{len(self.things)} test devices")
            deadline = time.monotonic() + self.options.switch_timeout
            while self.seen.backlog() and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL)
        finally:
            watcher.stop()
        if self.seen.backlog():
            raise DrillError(f"{self.seen.backlog()} test devices did not reach {secondary} in time")
        # A thing reaches the secondary before its shadow, policies and groups: compare until in parity (or late).
        self.parity = self._parity()
        while not self.parity["in_parity"] and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            self.parity = self._parity()
        self.seen.mark("parity_checked", "in parity" if self.parity["in_parity"] else "NOT in parity")
        _say(f"replicated; the secondary is {'' if self.parity['in_parity'] else 'NOT '}in parity")
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
        self.switches["failover"] = self._wait_answer(self.options.secondary_region, outage)
        self.seen.mark("failover_complete", f"{self.record} answers {self.options.secondary_region}")

    def _change_in_secondary(self) -> None:
        things = self.things[: max(1, min(10, len(self.things)))]
        for thing in things:
            self._update_shadow(thing, self.options.secondary_region)
        self.outage_changes = {"made": len(things), "things": things}
        time.sleep(self.options.outage_seconds)

    def _fail_back(self) -> None:
        restore = self.seen.mark("restore", f"health check {self.target.health_check_id} restored")
        self._restore_health_check()
        self.switches["failback"] = self._wait_answer(self.options.primary_region, restore)
        self.seen.mark("failback_complete", f"{self.record} answers {self.options.primary_region}")
        assert self.outage_changes is not None
        made = [c for c in self.seen.shadow_changes if c.region == self.options.secondary_region]
        primary, secondary = self.options.primary_region, self.options.secondary_region
        self.outage_changes.update(shadow_changes.fate(made, self._seq_in(primary), self._seq_in(secondary)))

    def _read_lag_metric(self) -> None:
        from iot_dr_local.drill.lag_metric import read_lag_metric

        cloudwatch = aws.client("cloudwatch", self.options.secondary_region)
        self.lag_metric = read_lag_metric(cloudwatch, self.target.state_table, self.seen.milestones[0].at, time.time())

    def tear_down(self) -> None:
        """Restore the health check first, then delete the test devices: in every phase, and on interruption."""
        if self._writer is not None:
            self._writer.stop()
        self._restore_health_check()
        if self.things:
            self.cleanup = self._delete_devices()
        self.seen.mark("torn_down")

    def _restore_health_check(self) -> None:
        if self.fault is not None:
            health_check_fault.restore(self.route53, self.fault, self.options.report_dir)
            self.fault = None

    # -- observing ----------------------------------------------------------------------------------------------

    def _answer_region(self) -> str | None:
        """The region whose endpoint the failover record answers now (named in the CNAME's target); None when the
        answer names neither region or the lookup failed (kept in ``dns_error``: a switch may be under way)."""
        import dns.exception

        try:
            target, _ = self.resolver.cname(self.record)
        except dns.exception.DNSException as err:
            self.dns_error = f"{type(err).__name__}: {err}"
            return None
        labels = target.lower().split(".")
        return next((r for r in (self.options.primary_region, self.options.secondary_region) if r in labels), None)

    def _wait_answer(self, region: str, since: float) -> dict[str, Any]:
        """Poll the record until it answers ``region``: the switch's time after its trigger ``since``."""
        deadline = time.monotonic() + self.options.switch_timeout
        while time.monotonic() < deadline:
            if self._answer_region() == region:
                at = time.time()
                return {"to_region": region, "trigger_at": since, "answered_at": at, "seconds": at - since}
            time.sleep(POLL_INTERVAL)
        raise DrillError(f"{self.record} did not answer {region} within {self.options.switch_timeout:.0f} s")

    def _watch_replication(self) -> None:
        now = time.time()
        for name in _run_things(self.iot[self.options.secondary_region], self.run_id):
            self.seen.replicated_at.setdefault(name, now)

    def _parity(self) -> dict[str, Any]:
        from iot_dr.fleet.drift import Region, compare_fleet

        primary = Region.limited(self.options.primary_region)
        secondary = Region.limited(self.options.secondary_region)
        drifts = compare_fleet(primary, secondary, self.things)
        differences = sorted(d.name for d in drifts if not d.in_sync)
        return {"in_parity": not differences, "compared": len(drifts), "differences": differences}

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
        """Delete the test devices in the primary and wait for replication to delete them in the secondary; delete
        there what it has not within the timeout. Only things this run created are touched."""
        primary, secondary = self.options.primary_region, self.options.secondary_region
        for name in self.things:
            _delete_thing(self.iot[primary], self.iot_data[primary], name)
        deadline = time.monotonic() + self.options.switch_timeout
        left = list(self.things)
        while left and time.monotonic() < deadline:
            left = [
                name
                for name in left
                if describe_or_none(self.iot[secondary].describe_thing, thingName=name) is not None
            ]
            if left:
                time.sleep(POLL_INTERVAL)
        for name in left:
            _delete_thing(self.iot[secondary], self.iot_data[secondary], name)
        return {"deleted": len(self.things), "deleted_in_secondary_by_the_drill": left}

    # -- results ------------------------------------------------------------------------------------------------

    def passed(self) -> bool:
        return (
            self.outcome == "completed"
            and bool(self.parity and self.parity["in_parity"])
            and set(self.switches) == {"failover", "failback"}
        )

    def report(self) -> dict[str, Any]:
        from dataclasses import asdict

        seen = self.seen
        return {
            "schema_version": 1,
            "mode": "aws",
            "outcome": self.outcome,
            "passed": self.passed(),
            "options": {
                "devices": self.options.devices,
                "primary_region": self.options.primary_region,
                "secondary_region": self.options.secondary_region,
                "outage_seconds": self.options.outage_seconds,
            },
            "target": None if self.target is None else {**asdict(self.target), "record_name": self.record},
            "milestones": [asdict(m) for m in seen.milestones],
            "replication": replication_figures(seen, self.lag_metric),
            "parity_before_outage": self.parity,
            "rpo": self.rpo,
            "switches": self.switches,
            "outage_changes": self.outage_changes,
            "cleanup": self.cleanup,
        }


def _delete_thing(iot: Any, iot_data: Any, name: str) -> None:
    """The thing and its classic shadow, whichever of them is still there."""
    ignore_not_found(iot_data.delete_thing_shadow, thingName=name)
    ignore_not_found(iot.delete_thing, thingName=name)


def summary_lines(document: dict[str, Any]) -> list[str]:
    options, replication = document["options"], document["replication"]
    lines = [
        f"drill against {options['primary_region']} -> {options['secondary_region']}: {document['outcome']} "
        f"({'PASSED' if document['passed'] else 'FAILED'})",
    ]
    lag = replication["lag_seconds"]
    if lag["count"]:
        lines.append(
            f"  replication lag ({replication['devices_replicated']}/{replication['devices_created']} devices): "
            f"p50 {lag['p50']:.2f} s, p95 {lag['p95']:.2f} s, max {lag['max']:.2f} s"
        )
    metric = replication["lag_metric"]
    if metric and metric["samples"]:
        lines.append(f"  ReplicationLag metric ({metric['samples']} events): max {metric['max_ms']:.0f} ms")
    if document["rpo"]:
        rpo = document["rpo"]
        lines.append(f"  backlog when the health check failed: {rpo['unreplicated']} shadow changes")
    for phase, switch in document["switches"].items():
        lines.append(f"  {phase}: the record answered {switch['to_region']} after {switch['seconds']:.1f} s")
    if document["cleanup"]:
        lines.append(f"  test devices deleted: {document['cleanup']['deleted']}")
    return lines
