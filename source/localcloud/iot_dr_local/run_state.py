"""The state file of a running ``iot-dr local up``: where its services are and which processes run them.

``iot-dr local outage``/``restore`` are separate processes; they find the brokers through this file and record the
broker processes they start in it, so ``local up`` can stop those too when it shuts down. Every read-modify-write
holds an exclusive lock on the state directory, and the file is replaced atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from iot_dr_local.process_refs import ProcessRef

STATE_FILE_NAME = "state.json"


class StateFileError(ValueError):
    """The state file is not one ``local up`` wrote (not JSON, or a field missing or of the wrong kind)."""


@dataclass(frozen=True)
class BrokerState:
    """One region's broker: enough to stop it by PID and to start it again with the same configuration."""

    region: str
    role: str
    name: str
    address: str
    port: int
    argv: list[str]
    log_path: str
    process: ProcessRef | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BrokerState:
        process = data.get("process")
        return cls(**{**data, "process": ProcessRef(**process) if process else None})


@dataclass(frozen=True)
class DnsState:
    address: str
    port: int
    zone: str
    record: str
    process: ProcessRef | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DnsState:
        process = data.get("process")
        return cls(**{**data, "process": ProcessRef(**process) if process else None})


@dataclass(frozen=True)
class DeviceState:
    name: str
    cert_path: str
    key_path: str
    certificate_id: str


@dataclass(frozen=True)
class LocalState:
    endpoint: str
    primary_region: str
    secondary_region: str
    server: ProcessRef
    runtime_dir: str | None = None
    ca_path: str | None = None
    dns: DnsState | None = None
    brokers: dict[str, BrokerState] = field(default_factory=dict)
    device: DeviceState | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalState:
        return cls(
            endpoint=data["endpoint"],
            primary_region=data["primary_region"],
            secondary_region=data["secondary_region"],
            server=ProcessRef(**data["server"]),
            runtime_dir=data.get("runtime_dir"),
            ca_path=data.get("ca_path"),
            dns=DnsState.from_json(data["dns"]) if data.get("dns") else None,
            brokers={region: BrokerState.from_json(b) for region, b in (data.get("brokers") or {}).items()},
            device=DeviceState(**data["device"]) if data.get("device") else None,
        )

    def with_broker(self, broker: BrokerState) -> LocalState:
        return replace(self, brokers={**self.brokers, broker.region: broker})

    def processes(self) -> list[ProcessRef]:
        """Every daemon process the state names (not the ``local up`` process itself)."""
        refs = [broker.process for broker in self.brokers.values()]
        refs.append(self.dns.process if self.dns else None)
        return [ref for ref in refs if ref is not None]


class StateFile:
    """``<directory>/state.json``; ``locked()`` serialises the processes that read and change it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE_NAME

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock; the directory must exist."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> LocalState | None:
        """The state, or None when there is no file; raises ``StateFileError`` naming the file when it is corrupt."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return LocalState.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            detail = f"no {err}" if isinstance(err, KeyError) else str(err)
            raise StateFileError(
                f"{self.path} is not a state file of iot-dr local up ({detail}); stop any local cloud using it and "
                "remove it"
            ) from err

    def write(self, state: LocalState) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(state), indent=2) + "\n")
        os.replace(temporary, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
