"""Scheduled in the primary: one bounded run of the reconciliation sweep (iot_dr.sync.reconcile)."""

from __future__ import annotations

from typing import Any

from iot_dr.core.logs import lambda_entry
from iot_dr.core.settings import ReconcileSettings
from iot_dr.sync.reconcile import scheduled_sweep


@lambda_entry(correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return scheduled_sweep(ReconcileSettings.from_env(), context.get_remaining_time_in_millis)
