"""``iot-dr local up|outage|restore``: serve the local two-region cloud; take a region down and back up.

``local up`` deploys the solution, starts the failover services (a broker per region, the DNS server with the failover
CNAME, Route 53 emulation) and writes a state file. ``outage`` and ``restore`` are separate processes: they switch the
region's API down or up through the local cloud's outage switch (``outage_switch``), find the region's broker in the
state file, stop it by PID or start it again with its configuration, and record what they did there, so ``local up``
stops every broker process, whoever started it, when it is interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import psutil

from iot_dr_cli.tooling import ToolError
from iot_dr_local import outage_switch
from iot_dr_local.failover_plan import FailoverPlanError, FailoverSettings
from iot_dr_local.mqtt_broker import PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS, port_open
from iot_dr_local.ports import TCP, UDP, Port, PortInUse, require_free
from iot_dr_local.process_refs import ProcessRef
from iot_dr_local.processes import Daemon, DaemonError
from iot_dr_local.route53 import RecordSwitch
from iot_dr_local.run_state import BrokerState, DeviceState, DnsState, LocalState, StateFile, StateFileError

if TYPE_CHECKING:
    from iot_dr_local.cloud import LocalCloud
    from iot_dr_local.failover import DeviceCertificate, FailoverServices

DEMO_DEVICE = "iot-dr-local-device"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SWITCH_POLL_SECONDS = 0.2
STARTING = "starting"
# A stop request must end local up within 5 s: clean-up gets this long, then every child is killed and it exits.
SHUTDOWN_DEADLINE_SECONDS = 4.0


class LocalCommandError(ToolError):
    """A ``local`` command cannot do what was asked; the message is for the user, ``exit_code`` the command's."""


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived: unwind whatever phase ``local up`` is in (a BaseException, so that no
    ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class UpOptions:
    port: int
    primary_region: str
    secondary_region: str
    state_dir: Path
    failover: bool
    settings: FailoverSettings
    quotas: str | None = None


def _say(line: str) -> None:
    print(line, flush=True)


def _error(message: str) -> None:
    print(f"iot-dr: error: {message}", file=sys.stderr, flush=True)


def _fixed_ports(options: UpOptions) -> list[Port]:
    """The ports ``local up`` will bind that the user chose (0 picks a free one, so it is not listed)."""
    ports = [Port("127.0.0.1", options.port)]
    if options.failover:
        settings = options.settings
        ports += [Port(address, settings.mqtt_port) for address in (PRIMARY_BROKER_ADDRESS, SECONDARY_BROKER_ADDRESS)]
        ports += [Port(settings.dns_address, settings.dns_port, protocol) for protocol in (TCP, UDP)]
    return ports


class _StopSignals:
    """The first SIGTERM/SIGINT starts a shutdown deadline and, until READY, raises StopRequested in the main thread
    wherever it is (importing moto, deploying); once serving, the loop polls ``received`` instead, so that no lock is
    left held by an exception raised inside it. Later signals are ignored while shutting down."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.raising = True

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        _start_shutdown_deadline(128 + signum)
        if self.raising:
            raise StopRequested(signum)


def _start_shutdown_deadline(exit_code: int) -> None:
    """If clean-up hangs, kill every child process and exit anyway (daemons' watchdogs stop the daemons)."""

    def expire() -> None:
        time.sleep(SHUTDOWN_DEADLINE_SECONDS)
        print("iot-dr: shutdown took too long; killing child processes", file=sys.stderr, flush=True)
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                continue
        os._exit(exit_code)

    threading.Thread(target=expire, name="shutdown-deadline", daemon=True).start()


def serve(options: UpOptions) -> int:
    """Run ``local up`` until SIGTERM/SIGINT. Exit codes: 0 stopped after READY, 1 failure (a port in use, a daemon
    that cannot start), 2 bad arguments, 128 + signal number when stopped before READY."""
    if options.primary_region == options.secondary_region:
        _error("the primary and secondary regions must differ")
        return EXIT_USAGE
    state_file = StateFile(options.state_dir.resolve())
    try:
        state_file.directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _error(f"--state-dir {options.state_dir}: cannot create it: {err.strerror or err}")
        return EXIT_USAGE
    stop_signals = _StopSignals()
    stop_signals.install()
    try:
        placeholder = LocalState(STARTING, options.primary_region, options.secondary_region, ProcessRef.this_process())
        # Claimed first: a local cloud running from this state directory is the likelier reason for a taken port, and
        # claiming stops the daemons an earlier crash left behind.
        _claim(state_file, placeholder)
    except LocalCommandError as err:
        _error(str(err))
        return err.exit_code
    except StopRequested as stop:
        return 128 + stop.signum
    try:
        require_free(_fixed_ports(options), "stop it or choose another port (0 picks a free one)")
        return EXIT_OK if _serve_claimed(options, state_file, stop_signals) else EXIT_FAILURE
    except PortInUse as err:
        _error(str(err))
        return EXIT_FAILURE
    except StopRequested as stop:
        return 128 + stop.signum
    finally:
        _stop_recorded_processes(state_file)


def _serve_claimed(options: UpOptions, state_file: StateFile, stop_signals: _StopSignals) -> bool:
    """Start, deploy and serve until StopRequested; False when the failover services could not start."""
    # Imported here: moto takes seconds to import, and outage/restore must not wait for it.
    from iot_dr_local.cloud import LocalCloud

    cloud = LocalCloud(options.primary_region, options.secondary_region, port=options.port, quotas=options.quotas)
    runtime_dir: Path | None = None
    services: FailoverServices | None = None
    stopping = False
    try:
        cloud.start()
        cloud.prepare_account()
        cloud.deploy(progress=lambda line: print(line, file=sys.stderr, flush=True), health_checkers=True)
        state = LocalState(cloud.endpoint, cloud.primary_region, cloud.secondary_region, ProcessRef.this_process())
        if options.failover and _failover_available():
            runtime_dir = Path(tempfile.mkdtemp(prefix="iot-dr-local-"))
            try:
                services, state = _start_failover(cloud, options, state, runtime_dir)
            except (DaemonError, FailoverPlanError) as err:
                _error(f"cannot start the failover services: {err}")
                return False
        with state_file.locked():
            state_file.write(state)
        if services is not None:
            for line in _failover_summary(services, state):
                _say(line)
        _say(f"state file: {state_file.path}")
        if options.quotas:
            _say(f"quotas: {options.quotas} (IoT calls above AWS's default rates get ThrottlingException)")
        stop_signals.raising = False
        if stop_signals.received is not None:
            raise StopRequested(stop_signals.received)
        _say(f"READY endpoint={cloud.endpoint}")
        while stop_signals.received is None:
            time.sleep(SWITCH_POLL_SECONDS)
            for switch in services.new_switches() if services else []:
                _say(_switch_line(switch))
        stopping = True
        return True
    except StopRequested:
        stopping = True
        raise
    except Exception:
        if stop_signals.received is None:
            raise
        # The signal arrived inside a callback that a library turned into its own error (awscrt reports an exception
        # raised in its callbacks as AWS_ERROR_UNKNOWN): the stop request is still the cause.
        stopping = True
        raise StopRequested(stop_signals.received) from None
    finally:
        _shut_down(cloud, services, state_file, runtime_dir, stopping)


def _start_failover(
    cloud: LocalCloud, options: UpOptions, state: LocalState, runtime_dir: Path
) -> tuple[FailoverServices, LocalState]:
    services = cloud.start_failover(runtime_dir, options.settings)
    device = cloud.register_device_certificate(DEMO_DEVICE)
    return services, failover_state(state, services, device, runtime_dir)


def _shut_down(
    cloud: LocalCloud,
    services: FailoverServices | None,
    state_file: StateFile,
    runtime_dir: Path | None,
    stop_requested: bool,
) -> None:
    """Daemons and files first: they outlive the process. On a stop request the process ends right after, so every
    child process is ended at once and the cloud only removes its files; otherwise the cloud stops in order."""
    if stop_requested:
        if services is not None and services.emulator is not None:
            services.emulator.halt()  # before the checkers and the DNS server it reaches are ended
        _end_children()
    elif services is not None:
        services.stop()
    _stop_recorded_processes(state_file)
    if runtime_dir is not None:
        shutil.rmtree(runtime_dir, ignore_errors=True)
    cloud.stop(exiting=stop_requested)


def _end_children(timeout: float = 2.0) -> None:
    """SIGTERM every descendant (daemons, their watchdogs, function workers) at once; SIGKILL those still there."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            continue


def _failover_available() -> bool:
    from iot_dr_local.failover import missing_packages

    missing = missing_packages()
    if missing:
        print(
            f"failover services skipped: {' and '.join(missing)} not installed (apt-get install "
            f"--no-install-recommends {' '.join(missing)}); pass --no-failover to silence this",
            file=sys.stderr,
            flush=True,
        )
    return not missing


def _claim(state_file: StateFile, placeholder: LocalState) -> None:
    """Refuse to start next to a running local cloud; clean up after one that died without doing so.

    The placeholder holds the claim until READY, when the endpoint is known.
    """
    with state_file.locked():
        previous = _read(state_file)
        if previous is not None and previous.server.alive():
            raise LocalCommandError(
                f"a local cloud is already running (pid {previous.server.pid}, {previous.endpoint}); "
                f"stop it or use another --state-dir"
            )
        for process in previous.processes() if previous else []:
            if process.stop():
                print(f"stopped pid {process.pid} left over from an earlier local cloud", file=sys.stderr, flush=True)
        if previous is not None and previous.runtime_dir:
            shutil.rmtree(previous.runtime_dir, ignore_errors=True)
        state_file.write(placeholder)


def _stop_recorded_processes(state_file: StateFile) -> None:
    """Stop every daemon in our state file (including brokers ``restore`` started) and remove the file."""
    with state_file.locked():
        state = state_file.read()
        if state is None or state.server != ProcessRef.this_process():
            return
        for process in state.processes():
            process.stop()
        state_file.remove()


def failover_state(
    state: LocalState, services: FailoverServices, device: DeviceCertificate, runtime_dir: Path
) -> LocalState:
    """``state`` with the running failover services recorded as ``outage`` and ``restore`` read them: each broker's
    process and command line, the DNS server, the CA and the demo device."""
    plan = services.plan
    brokers = {}
    for role, region_plan in zip(("primary", "secondary"), plan.regions, strict=True):
        broker = services.brokers[region_plan.region]
        argv, log_path = services.broker_command(region_plan.region)
        brokers[region_plan.region] = BrokerState(
            region=region_plan.region,
            role=role,
            name=region_plan.broker_name.rstrip("."),
            address=broker.endpoint.address,
            port=broker.endpoint.port,
            argv=argv,
            log_path=str(log_path),
            process=ProcessRef.of(broker.pid) if broker.pid else None,
        )
    dns = services.dns
    if dns is None or dns.pid is None:
        raise DaemonError("the DNS server is not running")
    return replace(
        state,
        runtime_dir=str(runtime_dir),
        ca_path=str(services.ca.cert_path),
        dns=DnsState(dns.address, dns.port, plan.zone, plan.record.name.rstrip("."), ProcessRef.of(dns.pid)),
        brokers=brokers,
        device=DeviceState(device.name, str(device.cert_path), str(device.key_path), device.certificate_id),
    )


def _failover_summary(services: FailoverServices, state: LocalState) -> list[str]:
    plan, dns, device = services.plan, state.dns, state.device
    if dns is None or device is None:
        return []
    check = plan.primary.health_check
    lines = [f"local CA: {state.ca_path}"]
    lines += [
        f"broker {broker.region} ({broker.role}): {broker.name} = {broker.address}:{broker.port}, pid "
        f"{broker.process.pid if broker.process else '-'}"
        for broker in state.brokers.values()
    ]
    lines.append(
        f"DNS server: {dns.address}:{dns.port} serves {dns.record} CNAME {plan.record.primary_target.rstrip('.')} "
        f"and TXT {plan.txt_name.rstrip('.')}"
    )
    if check is not None:
        lines.append(
            f"Route 53 emulation ({plan.source}): probes every {check.request_interval:g} s, failure threshold "
            f"{check.failure_threshold}, record TTL {plan.record.ttl} s"
        )
    lines += [
        f"device gateway {region} (just-in-time registration): {gateway.endpoint.address}:{gateway.endpoint.port}"
        for region, gateway in services.gateways.items()
    ]
    lines.append(f"device credentials: {device.cert_path} {device.key_path} (certificate {device.certificate_id})")
    port = next(iter(state.brokers.values())).port
    lines.append(
        f"try: iot-dr-pubsub.py --endpoint {dns.record} --use-cname --dr-mode --dns-server {dns.address}:{dns.port} "
        f"--port {port} --root-ca {state.ca_path} --cert {device.cert_path} --key {device.key_path} "
        f"--client-id {device.name} --topic dt/{device.name} --count 0"
    )
    return lines


def _switch_line(switch: RecordSwitch) -> str:
    return "SWITCH " + json.dumps(
        {
            "record": switch.record.rstrip("."),
            "from": switch.from_target.rstrip("."),
            "to": switch.to_target.rstrip("."),
            "health_check_id": switch.cause.health_check_id,
            "streak_started_at": switch.cause.streak_started_at,
            "decided_at": switch.cause.decided_at,
            "dns_updated_at": switch.dns_updated_at,
        }
    )


@contextmanager
def _running_state(state_file: StateFile) -> Iterator[LocalState]:
    """The state of the running ``local up``, locked against the other ``local`` commands while in use."""
    missing = LocalCommandError(f"no local cloud is running (no {state_file.path}); start one with: iot-dr local up")
    if not state_file.directory.is_dir():
        raise missing
    with state_file.locked():
        state = _read(state_file)
        if state is None:
            raise missing
        if not state.server.alive():
            raise LocalCommandError(
                f"no local cloud is running (pid {state.server.pid} in {state_file.path} has exited)"
            )
        if state.endpoint == STARTING:
            raise LocalCommandError("the local cloud is still starting; try again when local up prints READY")
        yield state


def _read(state_file: StateFile) -> LocalState | None:
    try:
        return state_file.read()
    except StateFileError as err:
        raise LocalCommandError(str(err)) from err


def _check_region(state: LocalState, region: str) -> None:
    if region not in (state.primary_region, state.secondary_region):
        raise LocalCommandError(
            f"unknown region {region}: the local cloud runs {state.primary_region} and {state.secondary_region}",
            EXIT_USAGE,
        )


def _switch_api(state: LocalState, region: str, down: bool) -> None:
    """Take the region's API down or up through the local cloud's outage switch (``outage_switch``)."""
    try:
        outage_switch.switch(state.endpoint, region, down)
    except OSError as err:
        raise LocalCommandError(f"{region}: the local cloud at {state.endpoint} did not answer: {err}") from err


# What ``outage`` and ``restore`` do to a region's broker: given the region, the running state and the broker's
# state, the broker's new state (None: unchanged) and the line to print.
BrokerAction = Callable[[str, LocalState, BrokerState], tuple[BrokerState | None, str]]


def _switch_region(region: str, state_dir: Path, down: bool, broker_action: BrokerAction) -> int:
    """Take the region's API down (``down``) or up, then apply ``broker_action`` to its broker (when the failover
    services run one); 0, or the exit code of the ``LocalCommandError`` printed."""
    state_file = StateFile(state_dir.resolve())
    try:
        with _running_state(state_file) as state:
            _check_region(state, region)
            _switch_api(state, region, down)
            if down:
                _say(f"{region}: API down (503 ServiceUnavailableException), global-table replication held")
            else:
                _say(f"{region}: API up, held global-table replication released")
            broker = state.brokers.get(region)
            if broker is None:
                return EXIT_OK
            changed, line = broker_action(region, state, broker)
            if changed is not None:
                state_file.write(state.with_broker(changed))
    except LocalCommandError as err:
        _error(str(err))
        return err.exit_code
    _say(line)
    return EXIT_OK


def _kill_broker(region: str, state: LocalState, broker: BrokerState) -> tuple[BrokerState | None, str]:
    process = broker.process
    if process is None or not process.alive():
        return None, f"{region}: the broker is already stopped"
    process.stop(signal.SIGKILL)
    return replace(broker, process=None), f"{region}: broker {broker.name} stopped (pid {process.pid} killed)"


def _start_broker(region: str, state: LocalState, broker: BrokerState) -> tuple[BrokerState | None, str]:
    if broker.process is not None and broker.process.alive():
        return None, f"{region}: the broker is already running (pid {broker.process.pid})"
    # local up is the guardian: the broker ends with it, even when it is killed.
    daemon = Daemon(
        f"mosquitto-{region}",
        broker.argv,
        Path(broker.log_path),
        lambda: port_open(broker.address, broker.port),
        [Port(broker.address, broker.port)],
        guardian=state.server,
    )
    try:
        daemon.start()
    except DaemonError as err:
        raise LocalCommandError(f"{region}: the broker did not start: {err}") from err
    if daemon.pid is None:
        raise LocalCommandError(f"{region}: the broker exited right after starting")
    running = f"{region}: broker {broker.name} running again on {broker.address}:{broker.port} (pid {daemon.pid})"
    return replace(broker, process=ProcessRef.of(daemon.pid)), running


def outage(region: str, state_dir: Path) -> int:
    """A regional outage: the region's API answers 503 (global-table replication to and from it held) and its broker
    is killed (SIGKILL, as a crashing region would go)."""
    return _switch_region(region, state_dir, True, _kill_broker)


def restore(region: str, state_dir: Path) -> int:
    """Bring the region's API up (held replication follows) and start its broker again with its configuration;
    ``local up`` stops the broker when it shuts down."""
    return _switch_region(region, state_dir, False, _start_broker)
