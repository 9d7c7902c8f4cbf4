"""The region syncs run against a two-region local cloud with nothing deployed: the fleet predates the solution."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleet_support import PRIMARY, SECONDARY

from iot_dr_local.cloud import LocalCloud


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    local = LocalCloud(PRIMARY, SECONDARY)
    local.start()
    try:
        yield local
    finally:
        local.stop()
