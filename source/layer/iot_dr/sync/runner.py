"""One sync run from its settings: the shared entry of ``iot-dr sync``, the Lambda handlers and the container."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from iot_dr.core import aws
from iot_dr.core.logs import lambda_entry
from iot_dr.secondary.replicate.context import is_not_found
from iot_dr.sync.checkpoint import Checkpoint
from iot_dr.sync.copy import DeviceCopier
from iot_dr.sync.engine import Endpoints, Summary, Target, rate_limiter, run
from iot_dr.sync.feed import TableFeed
from iot_dr.sync.settings import SettingsError, SyncSettings, from_values
from iot_dr.sync.sizing import size_workers

REGION_TO_REGION = "region-to-region"
REGION_TO_DDB = "region-to-ddb"
KINDS = (REGION_TO_REGION, REGION_TO_DDB)


def check_table(settings: SyncSettings) -> str:
    """The name of the global table; raises ``SettingsError`` when ``DYNAMODB_GLOBAL_TABLE`` is unset or does not
    exist in the primary region."""
    if not settings.table:
        raise SettingsError(
            "DYNAMODB_GLOBAL_TABLE must name the global table (stack output GlobalDynamoDBTableName)",
            "DYNAMODB_GLOBAL_TABLE",
        )
    try:
        aws.client("dynamodb", settings.primary_region).describe_table(TableName=settings.table)
    except Exception as err:
        if is_not_found(err):
            raise SettingsError(
                f"DYNAMODB_GLOBAL_TABLE {settings.table!r} does not exist in {settings.primary_region}",
                "DYNAMODB_GLOBAL_TABLE",
            ) from None
        raise
    return settings.table


def sync(
    kind: str,
    settings: SyncSettings,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Run the ``kind`` sync (one of ``KINDS``); raises ``SettingsError`` for bad settings."""
    table = check_table(settings) if kind == REGION_TO_DDB else None
    endpoints = Endpoints.open(settings)
    target: Target
    if table is None:
        target = DeviceCopier(endpoints.primary, endpoints.secondary)
    else:
        target = TableFeed(endpoints.primary, aws.client("dynamodb", settings.primary_region), table)
    sizing = size_workers(kind, settings.mode, rate_limiter(settings).rate, settings.max_workers)
    try:
        summary = run(settings, endpoints, target, checkpoint, progress, sizing=sizing)
        if checkpoint is not None:
            summary.checkpoint = checkpoint.pass_kind
            # A checkpoint resumes interrupted runs only: once every device is synced, the next run starts afresh.
            if not summary.failed:
                checkpoint.complete()
        return summary
    finally:
        if checkpoint is not None:
            checkpoint.release()


def run_invocation(kind: str, event: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One Lambda invocation of the ``kind`` sync: settings from the guide's variables in ``environ`` (default the
    process environment), the event's optional ``{"shard": "i/n"}`` overriding ``SHARD`` so several invocations share
    a fleet. Returns the run's summary (``Summary.as_json``); raises ``SettingsError`` for bad settings."""
    values = {**(os.environ if environ is None else environ)}
    if event.get("shard"):
        values["SHARD"] = str(event["shard"])
    return sync(kind, from_values(values, needs_table=kind == REGION_TO_DDB)).as_json()


def lambda_handler(kind: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler of the ``kind`` sync: ``run_invocation`` with the process environment, logging set up by
    ``lambda_entry``."""

    @lambda_entry()
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return run_invocation(kind, event)

    return handler
