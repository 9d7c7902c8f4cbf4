"""The tools as an operator gets them (synced from ToolsS3Url), enable-registry-events.sh, and the run-all script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from local_cloud_support import PRIMARY, SECONDARY
from tool_support import TOOLS, needs_aws_cli, run_tool

from iot_dr_local.cloud import LocalCloud

GUIDE_TOOLS = (
    "bulk-bench.sh", "bulk-result.py", "create-device.sh", "create-device-attrs.sh", "create-device-type.sh",
    "create-device-attrs-type.sh", "delete-things.py", "iot-devices-cmp.py", "iot-dr-pubsub.py",
    "iot-dr-shadow-cmp.py", "iot-search-devices.py", "list-thing.py", "list-all-things.py", "test-dr-deployment.py",
    "iot-dr-run-tests.sh", "enable-registry-events.sh", "sample-pol1.json", "sample-pol2.json", "requirements.txt",
)  # fmt: skip


@needs_aws_cli
def test_synced_tools_folder_holds_every_tool_and_runs_on_its_own(
    cloud: LocalCloud, toolsrc: dict[str, str], tool_env: dict[str, str], tmp_path: Path, primary: Any
) -> None:
    synced = subprocess.run(
        ["aws", "s3", "sync", f"s3://{toolsrc['S3_BUCKET']}/tools/", str(tmp_path)],
        capture_output=True, text=True, env=tool_env, timeout=120, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    assert {name for name in GUIDE_TOOLS if not (tmp_path / name).is_file()} == set()
    assert (tmp_path / "toolsrc").is_file()
    # The folder's own packages are the ones imported: the tools do not need this repository.
    where = subprocess.run(
        [sys.executable, "-c", "import iot_dr, iot_dr_cli; print(iot_dr.__file__); print(iot_dr_cli.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=tool_env, check=True,
    )  # fmt: skip
    assert all(line.startswith(str(tmp_path)) for line in where.stdout.splitlines())
    primary.create_thing(thingName="dr-synced-1")
    # As the guide runs them: ./<tool> from the folder (the script's folder comes first on sys.path).
    listed = subprocess.run(
        [sys.executable, "./iot-search-devices.py", "--query-string", "thingName:dr-synced-*"],
        capture_output=True, text=True, cwd=tmp_path, env=tool_env, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == "dr-synced-1"
    primary.delete_thing(thingName="dr-synced-1")
    cloud.wait_idle()


@needs_aws_cli
def test_enable_registry_events_turns_on_events_and_indexing(tool_env: dict[str, str], secondary: Any) -> None:
    secondary.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "OFF"})
    secondary.update_event_configurations(eventConfigurations={"THING": {"Enabled": False}})
    result = run_tool("enable-registry-events.sh", env=tool_env)
    assert result.returncode == 0, result.stderr
    assert f"enabled in {SECONDARY}" in result.stdout and f"enabled in {PRIMARY}" in result.stdout
    indexing = secondary.get_indexing_configuration()["thingIndexingConfiguration"]
    assert indexing["thingIndexingMode"] == "REGISTRY_AND_SHADOW"
    events = secondary.describe_event_configurations()["eventConfigurations"]
    assert events["THING"]["Enabled"] and events["THING_GROUP_HIERARCHY"]["Enabled"]


def test_enable_registry_events_needs_regions(tool_env: dict[str, str]) -> None:
    env = {k: v for k, v in tool_env.items() if k != "SECONDARY_REGION"}
    result = run_tool("enable-registry-events.sh", env=env)
    assert result.returncode == 2
    assert "error: name the regions, or source toolsrc" in result.stderr


@needs_aws_cli
def test_run_all_passes_every_step_and_summarises(
    cloud: LocalCloud, tool_env: dict[str, str], tmp_path: Path, primary: Any, secondary: Any
) -> None:
    env = {**tool_env, "PYTHON": sys.executable, "REPLICATION_TIMEOUT": "120"}
    result = run_tool("iot-dr-run-tests.sh", "-n", "4", "-s", "2", "-b", "dr-run-", env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("bulk-registration", "device-comparison", "shadow-comparison", "deletion", "deletion-replicated"):
        assert f"  {step}: PASSED" in result.stdout
    assert "ALL STEPS PASSED" in result.stdout
    assert not [t for t in secondary.list_things()["things"] if t["thingName"].startswith("dr-run-")]
    cloud.wait_idle()


@pytest.mark.parametrize(
    ("args", "unset", "message"),
    [
        (["-n", "0"], None, "-n needs a positive number"),
        (["-n", "3"], "S3_BUCKET", "S3_BUCKET is not set: source toolsrc"),
    ],
)
def test_run_all_bad_input(
    tool_env: dict[str, str], tmp_path: Path, args: list[str], unset: str | None, message: str
) -> None:
    env = {k: v for k, v in tool_env.items() if k != unset}
    result = run_tool("iot-dr-run-tests.sh", *args, env=env, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr


def test_every_shell_tool_passes_bash_n_and_shellcheck() -> None:
    scripts = sorted(TOOLS.glob("*.sh"))
    assert len(scripts) >= 7
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0, script
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
    if subprocess.run(["which", "shellcheck"], capture_output=True, check=False).returncode != 0:
        pytest.skip("shellcheck is not installed")
    checked = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout
