"""Settings of each Lambda function, read from its environment inside the handler (never at import).

One convention for every function: a frozen dataclass whose ``from_env(environ=None)`` reads ``os.environ`` (or the
mapping a test passes) and raises ``ConfigurationError`` naming the variable when a required one is missing or
empty, or a number is not a whole number. Lambda sets ``AWS_REGION`` itself
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime); the
others come from the function's ``Environment`` in the templates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SECONDS_PER_DAY = 86400


class ConfigurationError(ValueError):
    """A function's environment variable is missing, empty or unusable; ``variable`` is its name."""

    def __init__(self, variable: str, problem: str = "is not set") -> None:
        super().__init__(f"environment variable {variable} {problem}")
        self.variable = variable


def environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """``environ``, or the process environment when it is None (what every ``from_env`` reads)."""
    return os.environ if environ is None else environ


def required(env: Mapping[str, str], name: str) -> str:
    """The value of ``name``; raises ``ConfigurationError`` when it is missing or empty."""
    value = env.get(name)
    if not value:
        raise ConfigurationError(name)
    return value


def optional(env: Mapping[str, str], name: str, default: str) -> str:
    """The value of ``name``, or ``default`` when it is missing or empty."""
    return env.get(name) or default


def flag(env: Mapping[str, str], name: str) -> bool:
    """The optional variable ``name`` as a boolean: ``true`` or ``false`` in any case, false when missing or empty;
    raises ``ConfigurationError`` for anything else (a typo must not silently mean false)."""
    text = optional(env, name, "false").lower()
    if text not in ("true", "false"):
        raise ConfigurationError(name, f"must be true or false, got {text!r}")
    return text == "true"


def whole_number(env: Mapping[str, str], name: str) -> int:
    """The required variable ``name`` as an int; raises ``ConfigurationError`` when missing or not a whole number."""
    text = required(env, name)
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(name, f"must be a whole number, got {text!r}") from None


@dataclass(frozen=True)
class RegionSettings:
    """Functions that need only their own region (custom resources whose inputs are the request's properties)."""

    region: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegionSettings:
        """Reads ``AWS_REGION``; raises ``ConfigurationError``."""
        return cls(required(environment(environ), "AWS_REGION"))


@dataclass(frozen=True)
class WorkerSettings:
    """The Step Functions workers in the secondary: state table, own and primary region, ledger retention (s)."""

    state_table: str
    region: str
    primary_region: str
    ledger_retention_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Reads ``STATE_TABLE``, ``AWS_REGION``, ``PRIMARY_REGION`` and ``LEDGER_RETENTION_DAYS`` (days, converted
        to seconds); raises ``ConfigurationError``."""
        env = environment(environ)
        return cls(
            required(env, "STATE_TABLE"),
            required(env, "AWS_REGION"),
            required(env, "PRIMARY_REGION"),
            whole_number(env, "LEDGER_RETENTION_DAYS") * SECONDS_PER_DAY,
        )


@dataclass(frozen=True)
class TriggerSettings:
    """The stream trigger: the workflow it starts, the dead-letter table and its region."""

    state_machine_arn: str
    dead_letter_table: str
    region: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TriggerSettings:
        """Reads ``STATE_MACHINE_ARN``, ``DEAD_LETTER_TABLE`` and ``AWS_REGION``; raises ``ConfigurationError``."""
        env = environment(environ)
        return cls(required(env, "STATE_MACHINE_ARN"), required(env, "DEAD_LETTER_TABLE"), required(env, "AWS_REGION"))


@dataclass(frozen=True)
class DeadLetterSettings:
    """The park-event task: the dead-letter table, the SQS queue URL used when the table is unavailable, region."""

    dead_letter_table: str
    fallback_queue_url: str
    region: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeadLetterSettings:
        """Reads ``DEAD_LETTER_TABLE``, ``FALLBACK_QUEUE_URL`` and ``AWS_REGION``; raises ``ConfigurationError``."""
        env = environment(environ)
        return cls(required(env, "DEAD_LETTER_TABLE"), required(env, "FALLBACK_QUEUE_URL"), required(env, "AWS_REGION"))


@dataclass(frozen=True)
class CaptureSettings:
    """Writers of the replication table in the primary: table name, item time to live (s), region."""

    replication_table: str
    item_ttl_seconds: int
    region: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CaptureSettings:
        """Reads ``REPLICATION_TABLE``, ``ITEM_TTL_SECONDS`` and ``AWS_REGION``; raises ``ConfigurationError``."""
        env = environment(environ)
        return cls(
            required(env, "REPLICATION_TABLE"), whole_number(env, "ITEM_TTL_SECONDS"), required(env, "AWS_REGION")
        )


@dataclass(frozen=True)
class ReconcileSettings:
    """The scheduled reconciliation: the capture settings, the secondary region, the fleet-index query, the table
    where the sweep keeps its cursor, and whether things only the secondary has are deleted (``DELETE_ORPHANS``)."""

    capture: CaptureSettings
    secondary_region: str
    query_string: str
    cursor_table: str
    delete_orphans: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReconcileSettings:
        """The capture variables plus ``SECONDARY_REGION``, ``CURSOR_TABLE``, optional ``QUERY_STRING`` (default
        ``thingName:*``) and ``DELETE_ORPHANS`` (default false); raises ``ConfigurationError``."""
        env = environment(environ)
        return cls(
            CaptureSettings.from_env(env),
            required(env, "SECONDARY_REGION"),
            optional(env, "QUERY_STRING", "thingName:*"),
            required(env, "CURSOR_TABLE"),
            flag(env, "DELETE_ORPHANS"),
        )


@dataclass(frozen=True)
class JitrSettings:
    """Just-in-time registration: the IoT policy attached to new certificates, and the region."""

    policy_name: str
    region: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JitrSettings:
        """Reads optional ``IOT_POLICY_NAME`` (default ``IoTDR-JITR_Policy``) and ``AWS_REGION``; raises
        ``ConfigurationError``."""
        env = environment(environ)
        return cls(optional(env, "IOT_POLICY_NAME", "IoTDR-JITR_Policy"), required(env, "AWS_REGION"))
