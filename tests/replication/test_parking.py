"""Every place an item can be parked is listed by ``iot-dr dead-letters`` and replayed by ``iot-dr replay``.

Faults are injected into the local cloud's services; the stacks are found without ``--stack``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from event_fixtures import load_event
from local_cloud_support import GIVE_UP_QUICKLY, PRIMARY, SECONDARY
from replication.test_failures import put_replication_item
from waiting import eventually

from iot_dr_cli.main import main
from iot_dr_local.cloud import LocalCloud

DEPLOY_PARAMETERS = GIVE_UP_QUICKLY


@pytest.fixture(autouse=True)
def no_faults_left(cloud: LocalCloud) -> Iterator[None]:
    """A fault a test injected but did not use up must not hit the next test."""
    yield
    cloud.faults.reset()


def printed_json(out: str, opener: str) -> Any:
    """The JSON document the command printed (indented, so it starts a line), among the log lines of the
    Lambda functions that run in this process."""
    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line == opener)
    return json.JSONDecoder().raw_decode("\n".join(lines[start:]))[0]


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["dead-letters", "--region", SECONDARY, "--json"]) == 0
    out = capsys.readouterr().out
    return [] if "\n[]" in f"\n{out}" and "[" not in out.splitlines() else list(printed_json(out, "["))


def replay(capsys: pytest.CaptureFixture[str], letter_id: str) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["replay", "--region", SECONDARY, "--id", letter_id])
    report = dict(printed_json(capsys.readouterr().out, "{"))
    assert code == 0, report
    return report


def letter_of(capsys: pytest.CaptureFixture[str], stage: str) -> dict[str, Any]:
    return eventually(lambda: next((row for row in listed(capsys) if row["stage"] == stage), None), timeout=60)


def secondary_reported(cloud: LocalCloud, thing: str) -> Any:
    data = cloud.client("iot-data", SECONDARY)
    try:
        document = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    except data.exceptions.ResourceNotFoundException:
        return None
    return document["state"].get("reported")


def test_a_failed_rule_action_is_listed_and_replayed_into_the_secondary(
    cloud: LocalCloud, primary: Any, primary_data: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    thing = f"rule-error-{uuid.uuid4().hex[:8]}"
    primary.create_thing(thingName=thing)
    eventually(lambda: thing in [t["thingName"] for t in cloud.client("iot", SECONDARY).list_things()["things"]])
    assert cloud.wait_idle(60)
    # The shadow rule's write into the replication table is refused: its error action keeps the message.
    cloud.faults.fail("dynamodb", "put_item", PRIMARY, times=1, code="ValidationException")
    primary_data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": {"big": 10**40}}}))
    letter = letter_of(capsys, "rule-error")
    assert letter["eventType"] == "SHADOW_EVENT"
    assert "ValidationException" in letter["reason"] or "injected" in letter["reason"]
    assert secondary_reported(cloud, thing) is None

    assert replay(capsys, letter["deadLetterId"])["replayed"] == [letter["deadLetterId"]]
    eventually(lambda: secondary_reported(cloud, thing) == {"big": 10**40})
    assert letter["deadLetterId"] not in {row["deadLetterId"] for row in listed(capsys)}


def test_a_stream_batch_the_workflow_never_accepted_is_listed_and_replayed(
    cloud: LocalCloud, primary: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cloud.wait_idle(60)
    # The workflow service refuses longer than the stream mapping retries: the mapping sends only a pointer.
    cloud.faults.fail("stepfunctions", "start_sync_execution", SECONDARY, times=50, code="KmsThrottlingException")
    group = f"outage-group-{uuid.uuid4().hex[:8]}"
    primary.create_thing_group(thingGroupName=group)
    try:
        letter = letter_of(capsys, "stream-on-failure")
    finally:
        cloud.faults.reset()
    secondary = cloud.client("iot", SECONDARY)
    assert group not in {g["groupName"] for g in secondary.list_thing_groups()["thingGroups"]}

    assert replay(capsys, letter["deadLetterId"])["replayed"] == [letter["deadLetterId"]]
    eventually(lambda: group in {g["groupName"] for g in secondary.list_thing_groups()["thingGroups"]})


def test_several_secondary_stacks_make_the_tools_ask_which_one(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudformation = cloud.client("cloudformation", SECONDARY)
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            name: {"Value": "x"} for name in ("DeadLetterTableName", "StateMachineArn", "TriggerFailureQueueUrl")
        },
    }
    cloudformation.create_stack(StackName="IoTDRSecondaryLookalike", TemplateBody=json.dumps(template))
    try:
        assert main(["dead-letters", "--region", SECONDARY]) == 1
        error = capsys.readouterr().err
        assert "several secondary stacks" in error and "IoTDRSecondaryLookalike" in error and "--stack" in error
    finally:
        cloudformation.delete_stack(StackName="IoTDRSecondaryLookalike")


def test_a_dead_letter_the_table_refuses_is_kept_in_the_fallback_queue_and_replayable(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cloud.wait_idle(60)
    event = load_event("registry/thing_created.json")
    marker = f"refused-{uuid.uuid4().hex[:8]}"
    del event["thingName"]
    event["thingId"] = marker
    # The item is malformed, so its only write in the secondary is its dead letter: the table refuses it.
    cloud.faults.fail("dynamodb", "put_item", SECONDARY, times=1, code="ValidationException")
    put_replication_item(cloud, event)
    letter = letter_of(capsys, "parked-item")
    assert letter["eventType"] == "THING_EVENT"
    assert "thingName" in letter["reason"]

    # Replayed, it is still malformed: this time the table takes its dead letter.
    assert replay(capsys, letter["deadLetterId"])["replayed"] == [letter["deadLetterId"]]
    parked_again = eventually(
        lambda: next(
            (row for row in listed(capsys) if row["stage"] == "workflow" and "thingName" in row["reason"]), None
        ),
        timeout=60,
    )
    assert parked_again["errorType"] == "MalformedEvent"
