"""A local cloud with the solution deployed from the templates, one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.moto_fixes.iot_registry import THING_TYPE_DELETE_WAIT_ENV

PRIMARY, SECONDARY = "us-east-1", "us-west-2"

# Short workflow retries keep tests quick while still exercising backoff; events whose dependency lands within
# about 20 s are applied, anything else is parked.
FAST_RETRIES = {
    "RetryIntervalSeconds": "1",
    "RetryBackoffRate": "1.5",
    "RetryMaxAttempts": "6",
    "RetryMaxDelaySeconds": "5",
}


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[LocalCloud]:
    """A test module may set DEPLOY_PARAMETERS (secondary stack parameters) to change the retry settings."""
    parameters = getattr(request.module, "DEPLOY_PARAMETERS", FAST_RETRIES)
    local = LocalCloud(PRIMARY, SECONDARY)
    with pytest.MonkeyPatch.context() as env:
        # Scenarios delete thing types right after deprecating them; AWS makes that wait five minutes.
        env.setenv(THING_TYPE_DELETE_WAIT_ENV, "0")
        local.start()
        try:
            local.prepare_account()
            local.deploy(**parameters)
            yield local
        finally:
            local.stop()


@pytest.fixture
def primary(cloud: LocalCloud) -> Any:
    return cloud.client("iot", PRIMARY)


@pytest.fixture
def secondary(cloud: LocalCloud) -> Any:
    return cloud.client("iot", SECONDARY)


@pytest.fixture
def primary_data(cloud: LocalCloud) -> Any:
    return cloud.client("iot-data", PRIMARY)


@pytest.fixture
def secondary_data(cloud: LocalCloud) -> Any:
    return cloud.client("iot-data", SECONDARY)
