"""One sync run from its settings: the shared entry of ``iot-dr sync``, the Lambda handlers and the container."""

from __future__ import annotations

from collections.abc import Callable

from iot_dr.core import aws
from iot_dr.secondary.replicate.context import is_not_found
from iot_dr.sync.checkpoint import Checkpoint
from iot_dr.sync.copy import DeviceCopier
from iot_dr.sync.engine import Endpoints, Summary, Target, rate_limiter, run
from iot_dr.sync.feed import TableFeed
from iot_dr.sync.settings import SettingsError, SyncSettings
from iot_dr.sync.sizing import size_workers

REGION_TO_REGION = "region-to-region"
REGION_TO_DDB = "region-to-ddb"
KINDS = (REGION_TO_REGION, REGION_TO_DDB)


def check_table(settings: SyncSettings) -> None:
    """Raises ``SettingsError`` when ``DYNAMODB_GLOBAL_TABLE`` does not exist in the primary region."""
    try:
        aws.client("dynamodb", settings.primary_region).describe_table(TableName=settings.table)
    except Exception as err:
        if is_not_found(err):
            raise SettingsError(
                f"DYNAMODB_GLOBAL_TABLE {settings.table!r} does not exist in {settings.primary_region}"
            ) from None
        raise


def sync(
    kind: str,
    settings: SyncSettings,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Run the ``kind`` sync (one of ``KINDS``); raises ``SettingsError`` for bad settings."""
    if kind == REGION_TO_DDB:
        check_table(settings)
    endpoints = Endpoints.open(settings)
    target: Target
    if kind == REGION_TO_REGION:
        target = DeviceCopier(endpoints.primary, endpoints.secondary)
    else:
        target = TableFeed(endpoints.primary, aws.client("dynamodb", settings.primary_region), str(settings.table))
    sizing = size_workers(kind, settings.mode, rate_limiter(settings).rate, settings.max_workers)
    try:
        return run(settings, endpoints, target, checkpoint, progress, sizing=sizing)
    finally:
        if checkpoint is not None:
            checkpoint.release()
