"""Settings of each Lambda function, read from its environment inside the handler (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    state_table: str
    region: str
    primary_region: str
    ledger_retention_seconds: int

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            _env("STATE_TABLE"),
            _env("AWS_REGION"),
            _env("PRIMARY_REGION"),
            int(_env("LEDGER_RETENTION_DAYS")) * 86400,
        )


@dataclass(frozen=True)
class TriggerSettings:
    state_machine_arn: str
    dead_letter_table: str
    region: str

    @classmethod
    def from_env(cls) -> TriggerSettings:
        return cls(_env("STATE_MACHINE_ARN"), _env("DEAD_LETTER_TABLE"), _env("AWS_REGION"))


@dataclass(frozen=True)
class DeadLetterSettings:
    dead_letter_table: str
    fallback_queue_url: str
    region: str

    @classmethod
    def from_env(cls) -> DeadLetterSettings:
        return cls(_env("DEAD_LETTER_TABLE"), _env("FALLBACK_QUEUE_URL"), _env("AWS_REGION"))


@dataclass(frozen=True)
class CaptureSettings:
    replication_table: str
    item_ttl_seconds: int
    region: str

    @classmethod
    def from_env(cls) -> CaptureSettings:
        return cls(_env("REPLICATION_TABLE"), int(_env("ITEM_TTL_SECONDS")), _env("AWS_REGION"))


@dataclass(frozen=True)
class ReconcileSettings:
    """``cursor_table``: where the sweep keeps its cursor; ``delete_orphans``: ``DELETE_ORPHANS`` is ``true``."""

    capture: CaptureSettings
    secondary_region: str
    query_string: str
    cursor_table: str
    delete_orphans: bool

    @classmethod
    def from_env(cls) -> ReconcileSettings:
        return cls(
            CaptureSettings.from_env(),
            _env("SECONDARY_REGION"),
            os.environ.get("QUERY_STRING") or "thingName:*",
            _env("CURSOR_TABLE"),
            os.environ.get("DELETE_ORPHANS", "false").lower() == "true",
        )


@dataclass(frozen=True)
class JitrSettings:
    policy_name: str
    region: str

    @classmethod
    def from_env(cls) -> JitrSettings:
        return cls(os.environ.get("IOT_POLICY_NAME") or "IoTDR-JITR_Policy", _env("AWS_REGION"))
