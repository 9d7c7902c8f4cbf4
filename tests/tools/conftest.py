"""The operator tools run as separate processes against a local cloud with the solution deployed.

The local cloud sets AWS_ENDPOINT_URL and test credentials in this process's environment; the tools inherit them,
plus the toolsrc variables the launcher wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from local_cloud_support import FAST_RETRIES, PRIMARY, running_cloud
from tool_support import parse_toolsrc

from iot_dr_local.cloud import LocalCloud


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with running_cloud(FAST_RETRIES) as local:
        yield local


@pytest.fixture(scope="module")
def toolsrc(cloud: LocalCloud) -> dict[str, str]:
    return parse_toolsrc(cloud.launch.toolsrc)


@pytest.fixture
def tool_env(toolsrc: dict[str, str]) -> dict[str, str]:
    """The environment an operator has after ``. toolsrc``, with the local cloud's endpoint and credentials."""
    # LOG_LEVEL is left out: the local cloud sets it in this process while a Lambda handler or probe runs.
    environment = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
    return {**environment, **toolsrc, "AWS_DEFAULT_REGION": PRIMARY}
