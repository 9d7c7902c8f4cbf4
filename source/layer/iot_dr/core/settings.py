"""Settings of each Lambda function, read from its environment inside the handler (never at import).

One convention for every function: a frozen dataclass whose ``from_env(environ=None)`` reads ``os.environ`` (or the
mapping a test passes) and raises ``ConfigurationError`` naming the variable when a required one is missing or
empty, or a number is not a whole number. The classes declare each field's variable (``variable``) and derive from
``FromEnvironment``, the one ``from_env``; tests construct them directly. Lambda sets ``AWS_REGION`` itself
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime); the
others come from the function's ``Environment`` in the templates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

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


def days_in_seconds(env: Mapping[str, str], name: str) -> int:
    """The required variable ``name``, a whole number of days, in seconds; raises ``ConfigurationError``."""
    return whole_number(env, name) * SECONDS_PER_DAY


# How a field is read: from the environment and the variable's name.
Reader = Callable[[Mapping[str, str], str], Any]


def reading(name: str, read: Reader = required) -> dict[str, Any]:
    """The field metadata ``FromEnvironment.from_env`` follows: the value is ``read(environment, name)``."""
    return {"variable": name, "read": read}


def variable(name: str, read: Reader = required) -> Any:
    """A settings field read from the environment variable ``name`` by ``read`` (default ``required``)."""
    return field(metadata=reading(name, read))


def optional_variable(name: str, default: str) -> Any:
    """A settings field read from the optional variable ``name``, ``default`` when it is missing or empty."""
    return variable(name, lambda env, name: optional(env, name, default))


class FromEnvironment:
    """Base of the settings dataclasses: ``from_env`` reads every field in declaration order."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read from ``environ`` (default ``os.environ``); raises ``ConfigurationError`` for the first field whose
        variable is missing, empty or unusable."""
        env = environment(environ)
        values = {f.name: f.metadata["read"](env, f.metadata["variable"]) for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**values)


@dataclass(frozen=True)
class RegionSettings(FromEnvironment):
    """Functions that need only their own region (custom resources whose inputs are the request's properties):
    ``AWS_REGION``."""

    region: str = variable("AWS_REGION")


@dataclass(frozen=True)
class WorkerSettings(FromEnvironment):
    """The Step Functions workers in the secondary: state table (``STATE_TABLE``), own and primary region
    (``AWS_REGION``, ``PRIMARY_REGION``), ledger retention (``LEDGER_RETENTION_DAYS``, held in seconds)."""

    state_table: str = variable("STATE_TABLE")
    region: str = variable("AWS_REGION")
    primary_region: str = variable("PRIMARY_REGION")
    ledger_retention_seconds: int = variable("LEDGER_RETENTION_DAYS", days_in_seconds)


@dataclass(frozen=True)
class TriggerSettings(FromEnvironment):
    """The stream trigger: the workflow it starts (``STATE_MACHINE_ARN``), the dead-letter table
    (``DEAD_LETTER_TABLE``) and its region (``AWS_REGION``)."""

    state_machine_arn: str = variable("STATE_MACHINE_ARN")
    dead_letter_table: str = variable("DEAD_LETTER_TABLE")
    region: str = variable("AWS_REGION")


@dataclass(frozen=True)
class DeadLetterSettings(FromEnvironment):
    """The park-event task: the dead-letter table (``DEAD_LETTER_TABLE``), the SQS queue URL used when the table is
    unavailable (``FALLBACK_QUEUE_URL``), region (``AWS_REGION``)."""

    dead_letter_table: str = variable("DEAD_LETTER_TABLE")
    fallback_queue_url: str = variable("FALLBACK_QUEUE_URL")
    region: str = variable("AWS_REGION")


@dataclass(frozen=True)
class CaptureSettings(FromEnvironment):
    """Writers of the replication table in the primary: table name (``REPLICATION_TABLE``), item time to live
    (``ITEM_TTL_SECONDS``), region (``AWS_REGION``)."""

    replication_table: str = variable("REPLICATION_TABLE")
    item_ttl_seconds: int = variable("ITEM_TTL_SECONDS", whole_number)
    region: str = variable("AWS_REGION")


@dataclass(frozen=True)
class ReconcileSettings(FromEnvironment):
    """The scheduled reconciliation: the capture settings (``CaptureSettings``), the secondary region
    (``SECONDARY_REGION``), the fleet-index query (``QUERY_STRING``, default ``thingName:*``), the table where the
    sweep keeps its cursor (``CURSOR_TABLE``), and whether things only the secondary has are deleted
    (``DELETE_ORPHANS``, default false)."""

    capture: CaptureSettings = field(
        metadata=reading("REPLICATION_TABLE", lambda env, _: CaptureSettings.from_env(env))
    )
    secondary_region: str = variable("SECONDARY_REGION")
    query_string: str = optional_variable("QUERY_STRING", "thingName:*")
    cursor_table: str = variable("CURSOR_TABLE")
    delete_orphans: bool = variable("DELETE_ORPHANS", flag)


@dataclass(frozen=True)
class JitrSettings(FromEnvironment):
    """Just-in-time registration: the IoT policy attached to new certificates (``IOT_POLICY_NAME``, default
    ``IoTDR-JITR_Policy``), and the region (``AWS_REGION``)."""

    policy_name: str = optional_variable("IOT_POLICY_NAME", "IoTDR-JITR_Policy")
    region: str = variable("AWS_REGION")
