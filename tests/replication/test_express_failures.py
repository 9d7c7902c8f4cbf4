"""An Express execution that fails, times out, or leaves items neither applied nor parked loses nothing.

The trigger runs each batch's execution synchronously: the records of an execution that did not succeed, and each
item the workflow reports as not applied, are batch item failures. The stream mapping delivers them again and,
when the fault persists, sends a pointer to its on-failure destination, which ``iot-dr dead-letters`` lists and
``iot-dr replay`` applies once the fault is gone.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from event_fixtures import load_event
from local_cloud_support import GIVE_UP_QUICKLY, SECONDARY
from moto.stepfunctions.parser.models import stepfunctions_parser_backends
from replication.test_failures import put_replication_item, secondary_thing
from replication.test_parking import listed, replay
from waiting import eventually

from iot_dr_local.cloud import ACCOUNT_ID, LocalCloud
from iot_dr_local.locking import SERVICE_LOCK

DEPLOY_PARAMETERS = GIVE_UP_QUICKLY


@pytest.fixture(autouse=True)
def no_faults_left(cloud: LocalCloud) -> Iterator[None]:
    """A fault or time limit a test set must not reach the next test."""
    assert cloud.wait_idle(60)
    yield
    cloud.faults.reset()
    cloud.step_functions.reset()


def new_pointer(capsys: pytest.CaptureFixture[str], known: set[str]) -> dict[str, Any]:
    """The stream on-failure pointer that ``iot-dr dead-letters`` lists and ``known`` does not hold."""
    return eventually(
        lambda: next(
            (row for row in listed(capsys) if row["stage"] == "stream-on-failure" and row["deadLetterId"] not in known),
            None,
        ),
        timeout=90,
    )


def letter_ids(capsys: pytest.CaptureFixture[str]) -> set[str]:
    return {row["deadLetterId"] for row in listed(capsys)}


def group_names(cloud: LocalCloud) -> set[str]:
    return {group["groupName"] for group in cloud.client("iot", SECONDARY).list_thing_groups()["thingGroups"]}


def test_a_failed_execution_is_redelivered_then_listed_and_replayed(
    cloud: LocalCloud, primary: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    known = letter_ids(capsys)
    before = cloud.faults.injected
    # Every execution fails outright (an error no Catch sees) until the fault is removed.
    cloud.faults.fail_executions(SECONDARY, times=1000, error="States.Runtime")
    group = f"failed-execution-{uuid.uuid4().hex[:8]}"
    primary.create_thing_group(thingGroupName=group)
    try:
        pointer = new_pointer(capsys, known)
        failed_executions = cloud.faults.injected - before
    finally:
        cloud.faults.reset()
    # Delivered, then delivered again by the mapping's one retry: two executions, both failed.
    assert failed_executions == 2
    assert group not in group_names(cloud)

    assert replay(capsys, pointer["deadLetterId"])["replayed"] == [pointer["deadLetterId"]]
    assert group in group_names(cloud)  # replay returns once the workflow has applied it
    assert pointer["deadLetterId"] not in letter_ids(capsys)


def test_a_timed_out_execution_is_redelivered_then_listed_and_replayed(
    cloud: LocalCloud, primary: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    known = letter_ids(capsys)
    thing = f"timed-out-{uuid.uuid4().hex[:8]}"
    primary.create_thing(thingName=thing, attributePayload={"attributes": {"k": "v"}})
    assert cloud.wait_idle(60)
    eventually(lambda: secondary_thing(cloud, thing))
    # Express executions time out after 2 s here; the worker's IoT call hangs for 4 s, then fails.
    cloud.step_functions.express_max_duration = 2
    before = cloud.faults.injected
    cloud.faults.fail("iot", "update_thing", SECONDARY, times=1000, code="InvalidRequestException", delay=4)
    primary.update_thing(thingName=thing, attributePayload={"attributes": {"k": "after-timeout"}})
    try:
        pointer = new_pointer(capsys, known)
        # The abandoned workers of both executions end with their failed call before the fault goes.
        eventually(lambda: cloud.faults.injected - before >= 2, timeout=30)
        assert cloud.wait_idle(60)
        hung_calls = cloud.faults.injected - before
    finally:
        cloud.faults.reset()
        cloud.step_functions.reset()
    assert hung_calls == 2
    assert secondary_thing(cloud, thing)["attributes"] == {"k": "v"}

    assert replay(capsys, pointer["deadLetterId"])["replayed"] == [pointer["deadLetterId"]]
    assert secondary_thing(cloud, thing)["attributes"] == {"k": "after-timeout"}


def executions_carrying(cloud: LocalCloud, marker: str) -> int:
    """How many workflow executions in the secondary had ``marker`` in their input (read from the local cloud)."""
    arn = cloud.launch.secondary_outputs["StateMachineArn"]
    with SERVICE_LOCK.held():
        machine = stepfunctions_parser_backends[ACCOUNT_ID][SECONDARY].describe_state_machine(arn)
        return sum(marker in execution.execution_input for execution in machine.executions)


@pytest.fixture
def one_batch_at_a_time(cloud: LocalCloud) -> Iterator[None]:
    """The trigger's mapping reads with ParallelizationFactor 1 during the test: with the template's factor, records
    of unrelated keys go to concurrent batches."""
    lambdas = cloud.client("lambda", SECONDARY)
    trigger = cloud.launch.secondary_outputs["DynamoTriggerFunctionName"]
    mapping = lambdas.list_event_source_mappings(FunctionName=trigger)["EventSourceMappings"][0]
    lambdas.update_event_source_mapping(UUID=mapping["UUID"], ParallelizationFactor=1)
    yield
    lambdas.update_event_source_mapping(UUID=mapping["UUID"], ParallelizationFactor=mapping["ParallelizationFactor"])


@pytest.mark.usefixtures("one_batch_at_a_time")
def test_an_item_neither_applied_nor_parked_is_retried_alone(cloud: LocalCloud, primary: Any) -> None:
    lambdas = cloud.client("lambda", SECONDARY)
    trigger = cloud.launch.secondary_outputs["DynamoTriggerFunctionName"]
    mapping = lambdas.list_event_source_mappings(FunctionName=trigger)["EventSourceMappings"][0]["UUID"]
    applied = f"applied-{uuid.uuid4().hex[:8]}"
    marker = f"unparkable-{uuid.uuid4().hex[:8]}"
    broken_type = load_event("registry/thing_type_updated.json")
    del broken_type["thingTypeName"]
    broken_type.update(thingTypeId=marker, timestamp=int(time.time() * 1000))
    # Both records in one batch: the thing first, then a malformed thing type (applied in the batch's first wave).
    lambdas.update_event_source_mapping(UUID=mapping, Enabled=False)
    try:
        primary.create_thing(thingName=applied)
        assert cloud.wait_idle(60)  # the thing's record is in the secondary's stream before the other one
        put_replication_item(cloud, broken_type)
        assert cloud.wait_idle(60)
        # Parking the malformed item fails: the dead-letter table and its fallback queue refuse every attempt of
        # the first execution (the park step tries 5 times).
        cloud.faults.fail("dynamodb", "put_item", SECONDARY, times=5, code="ValidationException")
        cloud.faults.fail("sqs", "send_message", SECONDARY, times=5, code="InvalidParameterValue")
    finally:
        lambdas.update_event_source_mapping(UUID=mapping, Enabled=True)

    table = cloud.launch.secondary_outputs["DeadLetterTableName"]
    dynamodb = cloud.client("dynamodb", SECONDARY)

    def parked() -> dict[str, Any] | None:
        for item in dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]:
            if marker in item["payload"]["S"]:
                return item
        return None

    letter = eventually(parked, timeout=120)
    assert letter["errorType"]["S"] == "MalformedEvent"
    assert json.loads(letter["payload"]["S"])["event"]["thingTypeId"] == marker
    assert secondary_thing(cloud, applied)
    # The first execution carried both; the mapping delivered only the unparked item again.
    assert executions_carrying(cloud, marker) == 2
    assert executions_carrying(cloud, applied) == 1
