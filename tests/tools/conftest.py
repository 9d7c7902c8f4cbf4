"""The operator tools run as separate processes against a local cloud with the solution deployed.

The local cloud sets AWS_ENDPOINT_URL and test credentials in this process's environment; the tools inherit them,
plus the toolsrc variables the launcher wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iot_dr_local.cloud import LocalCloud

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "source" / "tools"
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
FAST_RETRIES = {
    "RetryIntervalSeconds": "1",
    "RetryBackoffRate": "1.5",
    "RetryMaxAttempts": "6",
    "RetryMaxDelaySeconds": "5",
}


def parse_toolsrc(text: str) -> dict[str, str]:
    """``export NAME=value`` lines (values quoted with shlex) as a dict."""
    import shlex

    variables = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            variables[name] = shlex.split(value)[0] if value else ""
    return variables


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    local = LocalCloud(PRIMARY, SECONDARY)
    local.start()
    try:
        local.prepare_account()
        local.deploy(**FAST_RETRIES)
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def toolsrc(cloud: LocalCloud) -> dict[str, str]:
    return parse_toolsrc(cloud.launch.toolsrc)


@pytest.fixture
def tool_env(toolsrc: dict[str, str]) -> dict[str, str]:
    """The environment an operator has after ``. toolsrc``, with the local cloud's endpoint and credentials."""
    return {**os.environ, **toolsrc, "AWS_DEFAULT_REGION": PRIMARY}


def run_tool(
    name: str, *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``source/tools/<name>`` as an operator would (Python tools with this interpreter)."""
    path = TOOLS / name
    argv = [sys.executable, str(path), *args] if name.endswith(".py") else [str(path), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, input=stdin, timeout=timeout, check=False
    )


def aws_cli_available() -> bool:
    return shutil.which("aws") is not None


needs_aws_cli = pytest.mark.skipif(
    not aws_cli_available(), reason="the AWS CLI is needed by the shell tools (pip install awscli)"
)


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
