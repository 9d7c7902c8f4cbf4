"""iot-dr sync region-to-region on a local cloud: parity, smart skips, repairs, resume, shards, bad settings."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fleet_support import attachment_types, group_layer, out_of_sync, policy_document, seed_fleet
from identity_support import create_identity, parts_present
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr.fleet.removal import delete_device
from iot_dr.sync.checkpoint import FileCheckpoint
from iot_dr_cli import devices_cmp
from iot_dr_cli.main import main
from iot_dr_local.cloud import LocalCloud

FLAGS = ("--primary-region", PRIMARY, "--secondary-region", SECONDARY)


def sync(capsys: pytest.CaptureFixture[str], *args: str, kind: str = "region-to-region") -> tuple[int, dict[str, Any]]:
    code = main(["sync", kind, *FLAGS, *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def _task_role_actions() -> set[str]:
    """Actions the sample Fargate task role allows (the placeholders name the regions and table)."""
    path = Path(__file__).resolve().parents[2] / "source/lambda/iot-dr-region-syncer/fargate-task-role-policy.json"
    return {action for statement in json.loads(path.read_text())["Statement"] for action in statement["Action"]}


def finished_in(checkpoint: Path) -> set[str]:
    return FileCheckpoint(checkpoint).finished() if checkpoint.exists() else set()


def test_existing_fleet_is_copied_whole_and_smart_mode_then_skips_it(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    iot, secondary = cloud.client("iot", PRIMARY), cloud.client("iot", SECONDARY)
    fleet = seed_fleet(iot, cloud.client("iot-data", PRIMARY), "parity", 6)

    code, summary = sync(capsys, "--query-string", fleet.query, "--max-workers", "4")

    assert code == 0, summary
    assert (summary["seen"], summary["created"], summary["failed"]) == (6, 6, 0)
    assert out_of_sync(cloud, fleet) == {}
    assert group_layer(secondary, "parity") == group_layer(iot, "parity")
    for name in fleet.names:
        assert attachment_types(secondary, name) == attachment_types(iot, name)
    allowed = _task_role_actions()
    assert {f"iot:{op}" for calls in summary["calls"].values() for op in calls} <= allowed
    # Shared dependencies are written once, however many devices use them.
    assert summary["calls"][SECONDARY].get("CreateThingType") == 1
    assert summary["calls"][SECONDARY].get("CreatePolicy") == 1 + 6
    # Missing devices are written create-first and what was just created is not listed: one DescribeThing per
    # device (the smart check), no DescribeCertificate for the 12 new certificates, no attachment listing for them
    # or the new things (only for the two thing groups).
    written = summary["calls"][SECONDARY]
    assert written.get("DescribeThing") == 6
    assert "DescribeCertificate" not in written and "ListThingPrincipalsV2" not in written
    assert written.get("ListAttachedPolicies", 0) <= 2

    code, again = sync(capsys, "--query-string", fleet.query)

    assert code == 0
    assert (again["skipped"], again["created"], again["repaired"]) == (6, 0, 0)
    assert "CreateThing" not in again["calls"][SECONDARY]
    assert "RegisterCertificateWithoutCA" not in again["calls"][SECONDARY]


def test_the_health_checkers_identity_is_never_synced_nor_reported(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    iot, secondary = cloud.client("iot", PRIMARY), cloud.client("iot", SECONDARY)
    fleet = seed_fleet(iot, cloud.client("iot-data", PRIMARY), "ckprobe", 1)
    checker = create_identity(iot, "iot-dr-r53-checker-ckprobe")
    query = "thingName:*ckprobe*"  # matches both names

    code, summary = sync(capsys, "--query-string", query, "--mode", "repair")

    assert code == 0, summary
    assert (summary["seen"], summary["created"], summary["failed"]) == (1, 1, 0)
    assert out_of_sync(cloud, fleet) == {}
    assert parts_present(secondary, checker) == []
    # Nor is it a difference the comparison reports, nor a thing the fleet commands list.
    assert devices_cmp.main([*FLAGS, "--query-string", query]) == 0
    assert checker.thing_name not in capsys.readouterr().out


def _drift(cloud: LocalCloud, names: list[str]) -> None:
    """One kind of drift per device, made in the secondary."""
    iot, data = cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY)
    attributes, type_, certificate, policy, group, shadow, named = names
    iot.update_thing(thingName=attributes, attributePayload={"attributes": {"serial": "x"}, "merge": False})
    iot.update_thing(thingName=type_, removeThingType=True)
    [first, *_] = iot.list_thing_principals(thingName=certificate)["principals"]
    iot.detach_thing_principal(thingName=certificate, principal=first)
    own = f"{policy}-own"
    iot.create_policy_version(policyName=own, policyDocument=policy_document(SECONDARY, "drift"), setAsDefault=True)
    iot.remove_thing_from_thing_group(thingGroupName="repair-child", thingName=group)
    iot.add_thing_to_thing_group(thingGroupName="repair-root", thingName=group)
    data.update_thing_shadow(thingName=shadow, payload=json.dumps({"state": {"reported": {"temperature": -1}}}))
    data.update_thing_shadow(thingName=named, shadowName="extra", payload=json.dumps({"state": {"desired": {"a": 1}}}))


def test_repair_mode_fixes_each_kind_of_drift(cloud: LocalCloud, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "repair", 9)
    assert sync(capsys, "--query-string", fleet.query)[0] == 0
    drifted = fleet.names[1:8]
    _drift(cloud, drifted)
    assert sorted(out_of_sync(cloud, fleet)) == drifted

    code, summary = sync(capsys, "--query-string", fleet.query, "--mode", "repair")

    assert code == 0, summary
    assert (summary["repaired"], summary["skipped"], summary["failed"]) == (7, 2, 0)
    assert out_of_sync(cloud, fleet) == {}


def test_killed_run_resumes_without_duplicates(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    iot, secondary = cloud.client("iot", PRIMARY), cloud.client("iot", SECONDARY)
    fleet = seed_fleet(iot, cloud.client("iot-data", PRIMARY), "resume", 12)
    checkpoint = tmp_path / "checkpoint"
    argv = [sys.executable, "-m", "iot_dr_cli.main", "sync", "region-to-region", *FLAGS]
    argv += ["--query-string", fleet.query, "--max-workers", "1", "--checkpoint", str(checkpoint)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        eventually(lambda: checkpoint.exists() and len(finished_in(checkpoint)) >= 4, timeout=120)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = finished_in(checkpoint)
    assert 4 <= len(finished) < 12, "the run was not stopped half-way"

    code, summary = sync(capsys, "--query-string", fleet.query, "--checkpoint", str(checkpoint))

    assert code == 0, summary
    assert summary["resumed"] == len(finished)
    # The device in flight when the run was killed is copied again in full, not skipped as already there.
    assert (summary["resumed"] + summary["created"], summary["skipped"]) == (12, 0)
    assert sorted(finished_in(checkpoint)) == fleet.names
    assert out_of_sync(cloud, fleet) == {}
    for name in fleet.names:
        assert len(secondary.list_thing_principals(thingName=name)["principals"]) == 2
        versions = secondary.list_policy_versions(policyName=f"{name}-own")["policyVersions"]
        assert len(versions) == 1
    assert len(secondary.list_policy_versions(policyName="resume-shared")["policyVersions"]) == 2


def test_two_shards_cover_the_fleet_exactly_once(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "shard", 10)
    done = []
    for index in (0, 1):
        checkpoint = tmp_path / f"shard-{index}"
        code, summary = sync(
            capsys, "--query-string", fleet.query, "--shard", f"{index}/2", "--checkpoint", str(checkpoint)
        )
        assert code == 0, summary
        assert summary["created"] == summary["seen"] > 0
        done.append(finished_in(checkpoint))

    assert not done[0] & done[1]
    assert sorted(done[0] | done[1]) == fleet.names
    assert out_of_sync(cloud, fleet) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--secondary-region", PRIMARY), "both us-east-1"),
        (("--secondary-region", "xx-nowhere-1"), "'xx-nowhere-1' is not a region"),
        (("--max-workers", "0"), "MAX_WORKERS"),
        (("--shard", "2/2"), "0 <= i < n"),
        (("--rate", "CreateThing=fast"), "Operation=N"),
        (("--query-string", "thingName:nothing-matches-*"), "no thing in us-east-1 matches"),
    ],
)
def test_bad_settings_give_one_line_and_exit_code_2(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code = main(["sync", "region-to-region", *FLAGS, *args])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("iot-dr sync: error: ") and message in line


def test_region_to_ddb_needs_an_existing_table(cloud: LocalCloud, capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in (
        ((), "DYNAMODB_GLOBAL_TABLE must name"),
        (("--table", "missing"), "'missing' does not exist"),
    ):
        code = main(["sync", "region-to-ddb", *FLAGS, *args])
        [line] = capsys.readouterr().err.splitlines()
        assert code == 2 and message in line


def _lambda_handler(kind: str) -> Any:
    path = Path(__file__).resolve().parents[2] / "source" / "lambda" / "iot-dr-region-syncer" / f"iot-{kind}-syncer.py"
    spec = importlib.util.spec_from_file_location(f"syncer_{kind.replace('-', '_')}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def test_lambda_handler_syncs_its_shard_from_the_guide_environment(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "lambda", 4)
    for name, value in {
        "PRIMARY_REGION": PRIMARY,
        "SECONDARY_REGION": SECONDARY,
        "QUERY_STRING": fleet.query,
        "MAX_WORKERS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    handler = _lambda_handler("region-to-region")

    summaries = [handler({"shard": f"{index}/2"}, None) for index in (0, 1)]

    assert sum(s["created"] for s in summaries) == 4
    assert all(s["failed"] == 0 for s in summaries)
    assert out_of_sync(cloud, fleet) == {}


def test_a_completed_run_is_not_resumed_the_next_run_with_its_checkpoint_starts_a_fresh_pass(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "fresh", 3)
    checkpoint = ["--query-string", fleet.query, "--checkpoint", str(tmp_path / "checkpoint")]
    code, summary = sync(capsys, *checkpoint)
    assert (code, summary["created"], summary["checkpoint"]) == (0, 3, "new"), summary
    # Deleted from the secondary after the run completed (by an operator, or a failed-back cleanup).
    delete_device(cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY), fleet.names[0])
    assert fleet.names[0] in out_of_sync(cloud, fleet)

    code, summary = sync(capsys, *checkpoint)

    assert code == 0, summary
    assert (summary["checkpoint"], summary["resumed"], summary["created"], summary["skipped"]) == (
        "fresh pass",
        0,
        1,
        2,
    )
    assert out_of_sync(cloud, fleet) == {}


def test_an_unwritable_checkpoint_file_is_one_usage_error_before_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sync", "region-to-region", *FLAGS, "--checkpoint", "/proc/nope/checkpoint"])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    [line] = captured.err.splitlines()
    assert line.startswith("iot-dr sync: error: checkpoint /proc/nope/checkpoint: cannot write it")
