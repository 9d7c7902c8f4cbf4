"""The record of a drill run against a deployment, written in the report directory before the drill creates anything:
``iot-dr drill --restore`` finds in it what a killed run left (its test devices, certificates and policy, by run id,
and the runtime directory with the simulated devices' private keys). Removed once the run has cleaned up."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from iot_dr_local.drill.health_check_fault import write_private_json

RUN_FILE = "drill-run.json"


class RunRecordError(Exception):
    """The file in the report directory is not a drill's run record; the message names it."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    primary_region: str
    secondary_region: str
    runtime_dir: str

    @classmethod
    def read(cls, directory: Path) -> RunRecord | None:
        """The record in ``directory``; None when there is none. Raises RunRecordError when it is malformed."""
        path = directory / RUN_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise RunRecordError(f"{path} cannot be read as a drill's run record: {err}") from err
        try:
            return cls(**{name: str(data[name]) for name in cls.__dataclass_fields__})
        except (KeyError, TypeError) as err:
            raise RunRecordError(f"{path} is not a drill's run record: missing {err}") from err

    def write(self, directory: Path) -> None:
        """Written whole or not at all, readable by its owner only."""
        write_private_json(directory / RUN_FILE, asdict(self))

    @staticmethod
    def remove(directory: Path) -> None:
        (directory / RUN_FILE).unlink(missing_ok=True)
