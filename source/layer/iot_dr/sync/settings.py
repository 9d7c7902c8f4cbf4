"""The region syncs' settings: the guide's environment variables, each also a command-line flag.

``PRIMARY_REGION``, ``SECONDARY_REGION``, ``SYNC_MODE`` (``smart``: devices already in the secondary are skipped;
``repair``: they are compared and every difference is repaired), ``QUERY_STRING`` (default ``thingName: *``),
``MAX_WORKERS`` (default 10) and, for region-to-ddb, ``DYNAMODB_GLOBAL_TABLE``. Bad values raise ``SettingsError``
with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import boto3

from iot_dr.core.settings import ConfigurationError

MODES = ("smart", "repair")
DEFAULT_QUERY = "thingName: *"
DEFAULT_WORKERS = 10
MAX_WORKERS = 50


class SettingsError(ConfigurationError):
    """A sync setting (environment variable or flag) is missing or wrong; the message names it and says what is
    expected, and ``variable`` is the variable's name when one is at fault (empty otherwise)."""

    def __init__(self, message: str, variable: str = "") -> None:
        ValueError.__init__(self, message)
        self.variable = variable


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` with 0 <= i < n."""
        index, slash, count = text.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            raise SettingsError(f"shard must be i/n (e.g. 0/4), got {text!r}", "SHARD") from None
        if not slash or not 0 <= shard.index < shard.count:
            raise SettingsError(f"shard must be i/n with 0 <= i < n, got {text!r}", "SHARD")
        return shard


@dataclass(frozen=True)
class SyncSettings:
    """A region sync's settings (see the module docstring); ``rates`` maps an API operation to requests per second."""

    primary_region: str
    secondary_region: str
    mode: str = "smart"
    query_string: str = DEFAULT_QUERY
    max_workers: int = DEFAULT_WORKERS
    table: str | None = None
    shard: Shard = field(default_factory=Shard)
    rates: dict[str, float] = field(default_factory=dict)


def known_regions() -> set[str]:
    """Regions where AWS IoT Core is offered, from botocore's endpoint data (no network call)."""
    session = boto3.session.Session()
    return {
        r for partition in session.get_available_partitions() for r in session.get_available_regions("iot", partition)
    }


def parse_rate(text: str) -> tuple[str, float]:
    """``"Operation=N"`` (N requests per second, positive)."""
    operation, equals, value = text.partition("=")
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not equals or not operation.isalnum() or rate <= 0:
        raise SettingsError(
            f"rate must be Operation=N with N > 0 (e.g. RegisterCertificateWithoutCA=50), got {text!r}", "RATES"
        )
    return operation, rate


def from_values(values: Mapping[str, str | None], needs_table: bool) -> SyncSettings:
    """Settings from the guide's variable names (environment or flags); raises ``SettingsError``."""

    def value(name: str, default: str | None = None) -> str | None:
        found = values.get(name)
        return found if found not in (None, "") else default

    primary, secondary = value("PRIMARY_REGION"), value("SECONDARY_REGION")
    if not primary or not secondary:
        missing = "SECONDARY_REGION" if primary else "PRIMARY_REGION"
        raise SettingsError("PRIMARY_REGION and SECONDARY_REGION must both be set", missing)
    if primary == secondary:
        raise SettingsError(
            f"PRIMARY_REGION and SECONDARY_REGION are both {primary}: they must differ", "SECONDARY_REGION"
        )
    regions = known_regions()
    for name, region in (("PRIMARY_REGION", primary), ("SECONDARY_REGION", secondary)):
        if region not in regions:
            raise SettingsError(f"{name} {region!r} is not a region where AWS IoT Core is offered", name)
    mode = value("SYNC_MODE", "smart") or "smart"
    if mode not in MODES:
        raise SettingsError(f"SYNC_MODE must be one of {', '.join(MODES)}, got {mode!r}", "SYNC_MODE")
    workers_text = value("MAX_WORKERS", str(DEFAULT_WORKERS)) or str(DEFAULT_WORKERS)
    if not workers_text.isdigit() or not 1 <= int(workers_text) <= MAX_WORKERS:
        raise SettingsError(
            f"MAX_WORKERS must be a whole number from 1 to {MAX_WORKERS}, got {workers_text!r}", "MAX_WORKERS"
        )
    table = value("DYNAMODB_GLOBAL_TABLE")
    if needs_table and not table:
        raise SettingsError(
            "DYNAMODB_GLOBAL_TABLE must name the global table (stack output GlobalDynamoDBTableName)",
            "DYNAMODB_GLOBAL_TABLE",
        )
    rates = dict(parse_rate(r) for r in (value("RATES") or "").split(",") if r.strip())
    return SyncSettings(
        primary_region=primary,
        secondary_region=secondary,
        mode=mode,
        query_string=value("QUERY_STRING", DEFAULT_QUERY) or DEFAULT_QUERY,
        max_workers=int(workers_text),
        table=table,
        shard=Shard.parse(value("SHARD") or "0/1"),
        rates=rates,
    )
