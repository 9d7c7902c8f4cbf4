"""create-device*.sh, list-thing.py, the search tools, iot-devices-cmp.py and delete-things.py on a local cloud.

One story per test: a device created with the guide's scripts is replicated, listed and compared in both regions,
drift is reported, and deletion removes what only the device used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from local_cloud_support import PRIMARY, SECONDARY
from tool_support import needs_aws_cli, run_tool
from waiting import eventually

from iot_dr.fleet.drift import Region, compare_fleet
from iot_dr_local.cloud import LocalCloud


def in_sync(env: dict[str, str], query: str, tmp_path: Path) -> dict[str, Any]:
    report_path = tmp_path / "drift.json"
    result = run_tool(
        "iot-devices-cmp.py", "--query-string", query, "--json", str(report_path), "--wait", "30", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(report_path.read_text())


@needs_aws_cli
def test_created_device_is_listed_compared_and_deleted_in_both_regions(
    cloud: LocalCloud, tool_env: dict[str, str], tmp_path: Path, primary: Any, secondary: Any
) -> None:
    created = run_tool("create-device.sh", "dr-tools-one", env=tool_env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    for suffix in ("certificate.pem", "private.key", "public.key"):
        assert (tmp_path / f"dr-tools-one.{suffix}").stat().st_size > 0
    assert (tmp_path / "dr-tools-one.private.key").stat().st_mode & 0o077 == 0

    report = in_sync(tool_env, "thingName:dr-tools-one", tmp_path)
    assert report["compared"] == report["inSync"] == 1

    for region in (PRIMARY, SECONDARY):
        listed = run_tool("list-thing.py", "dr-tools-one", env={**tool_env, "AWS_DEFAULT_REGION": region})
        assert listed.returncode == 0, listed.stderr
        device = json.loads(listed.stdout)
        assert device["thing"]["thingName"] == "dr-tools-one"
        [certificate] = device["certificates"]
        [policy] = certificate["policies"]
        assert policy["policyName"] == "dr-tools-one_Policy"
        # The policy's ARNs name the region the device is listed in: the replication rewrote them.
        assert f"arn:aws:iot:{region}:" in json.dumps(policy["policyDocument"])

    searched = run_tool("iot-search-devices.py", "--query-string", "thingName:dr-tools-*", env=tool_env)
    assert searched.returncode == 0 and "dr-tools-one" in searched.stdout.splitlines()
    assert "NUM_THINGS: 1" in searched.stdout

    deleted = run_tool("delete-things.py", "--query-string", "thingName:dr-tools-one", "-f", env=tool_env)
    assert deleted.returncode == 0, deleted.stderr
    assert "NUM_THINGS_DELETED: 1 NUM_ERRORS: 0" in deleted.stdout
    for iot in (primary, secondary):
        eventually(lambda iot=iot: not iot.list_things()["things"] and not iot.list_policies()["policies"], 60)
    cloud.wait_idle()


@needs_aws_cli
def test_variants_create_attributes_and_type_and_need_the_type_first(
    cloud: LocalCloud, tool_env: dict[str, str], tmp_path: Path, primary: Any
) -> None:
    missing = run_tool("create-device-type.sh", "dr-tools-typed", env=tool_env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "thing type dr-type03 does not exist in us-east-1" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    primary.create_thing_type(thingTypeName="dr-type03")
    assert run_tool("create-device-attrs-type.sh", "dr-tools-typed", env=tool_env, cwd=tmp_path).returncode == 0
    assert run_tool("create-device-attrs.sh", "dr-tools-attrs", env=tool_env, cwd=tmp_path).returncode == 0
    typed = primary.describe_thing(thingName="dr-tools-typed")
    assert typed["thingTypeName"] == "dr-type03" and typed["attributes"] == {"foo": "bar"}
    assert primary.describe_thing(thingName="dr-tools-attrs")["attributes"] == {"foo": "bar"}

    again = run_tool("create-device.sh", "dr-tools-attrs", env=tool_env, cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    in_sync(tool_env, "thingName:dr-tools-*", tmp_path)
    assert run_tool("delete-things.py", "--query-string", "thingName:dr-tools-*", "-f", env=tool_env).returncode == 0
    cloud.wait_idle()


def test_drift_is_reported_counted_and_fails(
    cloud: LocalCloud, tool_env: dict[str, str], tmp_path: Path, primary: Any, secondary: Any
) -> None:
    primary.create_thing(thingName="dr-drift-a", attributePayload={"attributes": {"site": "paris"}})
    primary.create_thing(thingName="dr-drift-b")
    eventually(lambda: len(secondary.list_things()["things"]) >= 2, 60)
    cloud.wait_idle()
    # Drift the secondary behind the replication's back: an attribute changed, and a certificate only there.
    secondary.update_thing(thingName="dr-drift-a", attributePayload={"attributes": {"site": "berlin"}})
    certificate = secondary.create_keys_and_certificate(setAsActive=True)
    secondary.attach_thing_principal(thingName="dr-drift-b", principal=certificate["certificateArn"])

    report_path = tmp_path / "drift.json"
    result = run_tool(
        "iot-devices-cmp.py", "--query-string", "thingName:dr-drift-*", "--json", str(report_path), env=tool_env
    )
    assert result.returncode == 1
    assert "NUM_THINGS_COMPARED: 2 NUM_THINGS_IN_SYNC: 0 NUM_THINGS_NOTSYNCED: 2 NUM_ERRORS: 0" in result.stdout
    report = json.loads(report_path.read_text())
    fields = {d["thingName"]: [x["field"] for x in d["differences"]] for d in report["devices"]}
    assert fields == {"dr-drift-a": ["attributes"], "dr-drift-b": [f"certificates/{certificate['certificateId']}"]}
    by_thing = {d["thingName"]: d for d in report["devices"]}
    assert by_thing["dr-drift-a"]["differences"][0]["secondary"] == {"site": "berlin"}

    secondary.detach_thing_principal(thingName="dr-drift-b", principal=certificate["certificateArn"])
    secondary.update_certificate(certificateId=certificate["certificateId"], newStatus="INACTIVE")
    secondary.delete_certificate(certificateId=certificate["certificateId"])
    for name in ("dr-drift-a", "dr-drift-b"):
        primary.delete_thing(thingName=name)
    cloud.wait_idle()


def test_replication_not_yet_done_is_drift_until_it_converges(
    cloud: LocalCloud, primary: Any, primary_data: Any, secondary: Any, secondary_data: Any
) -> None:
    # The secondary refuses the first CreateThing calls: the workflow retries, so the device arrives late.
    cloud.faults.fail("iot", "create_thing", SECONDARY, times=2)
    primary.create_thing(thingName="dr-late-1")
    regions = Region(PRIMARY, primary, primary_data), Region(SECONDARY, secondary, secondary_data)
    [early] = compare_fleet(*regions, ["dr-late-1"])
    assert [d.as_json() for d in early.differences] == [{"field": "thing", "primary": True, "secondary": False}]
    [late] = compare_fleet(*regions, ["dr-late-1"], wait=60)
    assert late.in_sync
    primary.delete_thing(thingName="dr-late-1")
    cloud.wait_idle()


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("list-thing.py", ["no-such-thing"], "list-thing.py: error: thing no-such-thing does not exist in us-east-1"),
        ("iot-devices-cmp.py", ["--max-workers", "51"], "argument --max-workers: 51 is outside 1-50"),
        ("iot-dr-shadow-cmp.py", ["--num-tests", "0"], "argument --num-tests: 0 must be at least 1"),
        ("iot-search-devices.py", [], "the following arguments are required: --query-string"),
        ("delete-things.py", ["--region", "us-east-1"], "the following arguments are required: --query-string"),
    ],
)
def test_bad_input_gets_one_line_and_an_exit_code(
    tool_env: dict[str, str], tool: str, args: list[str], message: str
) -> None:
    result = run_tool(tool, *args, env=tool_env)
    assert result.returncode == (1 if tool == "list-thing.py" else 2), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("tool", ["iot-devices-cmp.py", "iot-dr-shadow-cmp.py"])
def test_missing_toolsrc_variable_is_named(tool_env: dict[str, str], tool: str) -> None:
    env = {k: v for k, v in tool_env.items() if k not in ("PRIMARY_REGION",)}
    result = run_tool(tool, env=env)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"{tool}: error: PRIMARY_REGION is not set: source toolsrc (. toolsrc) or pass it as an argument"
    )


def test_list_all_things_works_without_arguments_and_with_indexing_off(
    cloud: LocalCloud, tool_env: dict[str, str], primary: Any
) -> None:
    primary.create_thing(thingName="dr-listed-1")
    listed = run_tool("list-all-things.py", env=tool_env)
    assert listed.returncode == 0 and "dr-listed-1" in listed.stdout.splitlines()
    primary.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "OFF"})
    try:
        fallback = run_tool("list-all-things.py", "dr-listed-*", env=tool_env)
        assert fallback.returncode == 0 and fallback.stdout.splitlines()[0] == "dr-listed-1"
        other = run_tool("iot-search-devices.py", "--query-string", "attributes.site:paris", env=tool_env)
        assert other.returncode == 1 and "fleet indexing is off in us-east-1" in other.stderr
    finally:
        primary.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "REGISTRY_AND_SHADOW"})
    primary.delete_thing(thingName="dr-listed-1")
    cloud.wait_idle()


def test_delete_things_asks_first(cloud: LocalCloud, tool_env: dict[str, str], primary: Any) -> None:
    primary.create_thing(thingName="dr-keep-1")
    refused = run_tool("delete-things.py", "--query-string", "thingName:dr-keep-*", env=tool_env, stdin="no\n")
    assert refused.returncode == 1 and "not confirmed: nothing deleted" in refused.stderr
    assert primary.describe_thing(thingName="dr-keep-1")
    confirmed = run_tool("delete-things.py", "--query-string", "thingName:dr-keep-*", env=tool_env, stdin="yes\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert not primary.list_things()["things"]
    cloud.wait_idle()
