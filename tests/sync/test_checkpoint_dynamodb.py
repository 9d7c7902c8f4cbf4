"""--checkpoint dynamodb://<table>/<key>: a killed run resumes without duplicates, and two runs on the same key
never both advance it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest
from fleet_support import out_of_sync, seed_fleet
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr.fleet.removal import delete_device
from iot_dr.sync.checkpoint import CheckpointBusy, CheckpointLost, DynamoCheckpoint
from iot_dr_cli.main import main
from iot_dr_local.cloud import LocalCloud

FLAGS = ("--primary-region", PRIMARY, "--secondary-region", SECONDARY)


def checkpoint_table(cloud: LocalCloud) -> str:
    """The table the README asks users to create."""
    name = f"sync-checkpoints-{uuid.uuid4().hex[:8]}"
    cloud.client("dynamodb", PRIMARY).create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "checkpoint", "AttributeType": "S"},
            {"AttributeName": "thing", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "checkpoint", "KeyType": "HASH"},
            {"AttributeName": "thing", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def states(cloud: LocalCloud, table: str, key: str) -> dict[str, str]:
    items = cloud.client("dynamodb", PRIMARY).query(
        TableName=table,
        KeyConditionExpression="checkpoint = :key",
        ExpressionAttributeValues={":key": {"S": key}},
        ConsistentRead=True,
    )["Items"]
    return {i["thing"]["S"]: i["state"]["S"] for i in items if "state" in i}


def sync(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["sync", "region-to-region", *FLAGS, *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def test_killed_run_resumes_from_the_table_without_duplicates(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    iot, secondary = cloud.client("iot", PRIMARY), cloud.client("iot", SECONDARY)
    fleet = seed_fleet(iot, cloud.client("iot-data", PRIMARY), "ddbck", 12)
    table = checkpoint_table(cloud)
    location = f"dynamodb://{table}/fleet/run-1"
    argv = [sys.executable, "-m", "iot_dr_cli.main", "sync", "region-to-region", *FLAGS]
    argv += ["--query-string", fleet.query, "--max-workers", "1"]
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "CHECKPOINT": location}
    )
    try:
        eventually(lambda: list(states(cloud, table, "fleet/run-1").values()).count("done") >= 4, timeout=120)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = {name for name, state in states(cloud, table, "fleet/run-1").items() if state == "done"}
    assert 4 <= len(finished) < 12, "the run was not stopped half-way"

    # Right after the kill the lease of the killed run still holds: a second run is refused, not run alongside.
    code, _, err = sync(capsys, "--query-string", fleet.query, "--checkpoint", location)
    assert code == 2 and "is in use by another run" in err
    assert {n for n, s in states(cloud, table, "fleet/run-1").items() if s == "done"} == finished

    def resumed() -> tuple[int, dict[str, Any], str] | None:
        """The resumed run, once the killed run's lease has expired (None while it is refused)."""
        result = sync(capsys, "--query-string", fleet.query, "--checkpoint", location)
        return None if result[0] == 2 and "is in use" in result[2] else result

    code, summary, err = eventually(resumed, timeout=90, interval=5)  # type: ignore[misc]

    assert code == 0, (summary, err)
    assert summary["resumed"] == len(finished)
    assert (summary["resumed"] + summary["created"], summary["skipped"]) == (12, 0)
    assert states(cloud, table, "fleet/run-1") == dict.fromkeys(fleet.names, "done")
    assert out_of_sync(cloud, fleet) == {}
    for name in fleet.names:
        assert len(secondary.list_thing_principals(thingName=name)["principals"]) == 2
        assert len(secondary.list_policy_versions(policyName=f"{name}-own")["policyVersions"]) == 1
    assert len(secondary.list_policy_versions(policyName="ddbck-shared")["policyVersions"]) == 2
    # A finished run gives the lease back: the next one starts at once.
    assert sync(capsys, "--query-string", fleet.query, "--checkpoint", location)[0] == 0


def test_two_runs_on_the_same_key_never_both_advance_it(cloud: LocalCloud) -> None:
    dynamodb = cloud.client("dynamodb", PRIMARY)
    table = checkpoint_table(cloud)
    now = [1000.0]
    first = DynamoCheckpoint(dynamodb, table, "shared", lease_seconds=30, clock=lambda: now[0])
    second = DynamoCheckpoint(dynamodb, table, "shared", lease_seconds=30, clock=lambda: now[0])
    first.load()
    first.start("a")
    first.mark("a")

    with pytest.raises(CheckpointBusy):
        second.load()

    now[0] += 31  # the first run stopped advancing for longer than the lease: the second takes over
    assert second.load() == ({"a"}, set())
    with pytest.raises(CheckpointLost):
        first.mark("b")
    second.start("c")
    first.release()  # not the holder any more: changes nothing

    assert states(cloud, table, "shared") == {"a": "done", "c": "started"}
    with pytest.raises(CheckpointBusy):
        DynamoCheckpoint(dynamodb, table, "shared", clock=lambda: now[0]).load()
    second.release()
    assert DynamoCheckpoint(dynamodb, table, "shared", clock=lambda: now[0]).load() == ({"a"}, {"c"})


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("dynamodb://no-key", "dynamodb://<table>/<key>"),
        ("dynamodb://x/key", "dynamodb://<table>/<key>"),
        ("dynamodb://missing-table/key", "checkpoint table 'missing-table' does not exist"),
    ],
)
def test_a_bad_checkpoint_location_gives_one_line_and_exit_code_2(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], location: str, message: str
) -> None:
    seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), f"bad{len(location)}", 1)
    code, summary, err = sync(capsys, "--checkpoint", location)
    assert (code, summary) == (2, {})
    [line] = err.splitlines()
    assert line.startswith("iot-dr sync: error: ") and message in line


def test_a_completed_run_is_not_resumed_the_next_run_on_its_key_starts_a_fresh_pass(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = seed_fleet(cloud.client("iot", PRIMARY), cloud.client("iot-data", PRIMARY), "ddbfresh", 3)
    location = f"dynamodb://{checkpoint_table(cloud)}/fleet/fresh"
    code, summary, err = sync(capsys, "--query-string", fleet.query, "--checkpoint", location)
    assert (code, summary["created"], summary["checkpoint"]) == (0, 3, "new"), err
    delete_device(cloud.client("iot", SECONDARY), cloud.client("iot-data", SECONDARY), fleet.names[0])
    assert fleet.names[0] in out_of_sync(cloud, fleet)

    code, summary, err = sync(capsys, "--query-string", fleet.query, "--checkpoint", location)

    assert code == 0, err
    assert (summary["checkpoint"], summary["resumed"], summary["created"], summary["skipped"]) == (
        "fresh pass",
        0,
        1,
        2,
    )
    assert out_of_sync(cloud, fleet) == {}
