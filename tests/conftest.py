"""Settings and fixtures shared by every test module.

``cloud`` is a two-region local cloud with nothing deployed, one per module; folders whose tests need the solution
deployed override it. The IoT clients of either region come from whichever ``cloud`` the test gets. The local cloud
is imported when a test first asks for it, so tests that do not use it do not pay for importing moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from iot_dr_local.cloud import LocalCloud

# Property tests check behaviour, not speed: on a loaded 2-core machine running tests side by side, one example
# may take far longer than Hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("iot-dr", deadline=None)
settings.load_profile("iot-dr")


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    from local_cloud_support import running_cloud

    with running_cloud() as local:
        yield local


@pytest.fixture
def primary(cloud: LocalCloud) -> Any:
    return cloud.client("iot", cloud.primary_region)


@pytest.fixture
def secondary(cloud: LocalCloud) -> Any:
    return cloud.client("iot", cloud.secondary_region)


@pytest.fixture
def primary_data(cloud: LocalCloud) -> Any:
    return cloud.client("iot-data", cloud.primary_region)


@pytest.fixture
def secondary_data(cloud: LocalCloud) -> Any:
    return cloud.client("iot-data", cloud.secondary_region)
