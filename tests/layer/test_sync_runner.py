"""The region-to-ddb sync needs its table before anything else happens."""

from __future__ import annotations

import pytest

from iot_dr.sync.runner import REGION_TO_DDB, sync
from iot_dr.sync.settings import SettingsError, SyncSettings


def test_region_to_ddb_without_a_table_names_the_missing_setting_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No endpoint can be reached: a call to AWS would fail with a connection error, not with SettingsError.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(SettingsError, match="DYNAMODB_GLOBAL_TABLE must name the global table") as raised:
        sync(REGION_TO_DDB, SyncSettings(primary_region="us-east-1", secondary_region="eu-west-1"))
    assert raised.value.variable == "DYNAMODB_GLOBAL_TABLE"
