"""iot-dr-shadow-cmp.py: classic and named shadows compared across regions, honest counts, cleanup, exit codes."""

from __future__ import annotations

from typing import Any

from local_cloud_support import SECONDARY
from tool_support import run_tool
from waiting import eventually

from iot_dr_local.cloud import LocalCloud


def test_classic_and_named_shadows_match_and_are_cleaned_up(
    cloud: LocalCloud, tool_env: dict[str, str], primary: Any, secondary: Any
) -> None:
    for extra in ([], ["--shadow-name", "config"]):
        # 8 reads wait up to 51 s for the replication (the default 5 wait 15 s), enough on a loaded machine.
        result = run_tool(
            "iot-dr-shadow-cmp.py", "--num-tests", "3", "--max-workers", "3", "--retries", "8", *extra, env=tool_env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "NUM_SHADOWS_COMPARED: 3 NUM_SHADOWS_NOTSYNCED: 0 NUM_ERRORS: 0" in result.stdout
        assert result.stdout.count("shadows match") == 3
    assert not primary.list_things()["things"]
    eventually(lambda: not secondary.list_things()["things"], 60)
    cloud.wait_idle()


def test_shadows_not_replicated_are_counted_and_fail(cloud: LocalCloud, tool_env: dict[str, str]) -> None:
    # The secondary refuses every shadow write for a while: the replication cannot deliver them in time.
    cloud.faults.fail("iot-data", "update_thing_shadow", SECONDARY, times=1000, code="InvalidRequestException")
    try:
        result = run_tool("iot-dr-shadow-cmp.py", "--num-tests", "2", "--retries", "2", env=tool_env)
    finally:
        cloud.faults.reset()
    assert result.returncode == 1
    assert "NUM_SHADOWS_COMPARED: 2 NUM_SHADOWS_NOTSYNCED: 2 NUM_ERRORS: 0" in result.stdout
    assert result.stdout.count(": not replicated: ") == 2
    cloud.wait_idle()
