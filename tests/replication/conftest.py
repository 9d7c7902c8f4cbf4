"""A local cloud with the solution deployed from the templates, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_cloud_support import FAST_RETRIES, running_cloud

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.moto_fixes.iot_registry import THING_TYPE_DELETE_WAIT_ENV


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[LocalCloud]:
    """A test module may set DEPLOY_PARAMETERS (secondary stack parameters) to change the retry settings."""
    with pytest.MonkeyPatch.context() as env:
        # Scenarios delete thing types right after deprecating them; AWS makes that wait five minutes.
        env.setenv(THING_TYPE_DELETE_WAIT_ENV, "0")
        with running_cloud(getattr(request.module, "DEPLOY_PARAMETERS", FAST_RETRIES)) as local:
            yield local
