"""moto's per-request work is done once (module list, parsed state machine definitions, task clients) and its IoT
registry is looked up by key, with the answers of its own scans."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from moto import backends
from moto.iot.models import IoTBackend, iot_backends

from iot_dr_local import moto_speedups

PRIMARY = "us-east-1"
PASS_MACHINE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}


def _wait(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return dict(execution)
        time.sleep(0.05)
    raise AssertionError("execution did not finish")


def test_a_definition_is_parsed_once_however_many_executions_run(aws: str) -> None:
    role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=PRIMARY)
    # A definition no other test uses, so the cache counts only these executions.
    definition = json.dumps({**PASS_MACHINE, "Comment": aws})
    machine = sfn.create_state_machine(name="pass", definition=definition, roleArn=role)["stateMachineArn"]
    misses = moto_speedups.parsed_program.cache_info().misses

    executions = [
        _wait(sfn, sfn.start_execution(stateMachineArn=machine, name=f"run-{index}")["executionArn"])
        for index in range(3)
    ]

    assert [json.loads(execution["output"]) for execution in executions] == [{"ok": True}] * 3
    assert moto_speedups.parsed_program.cache_info().misses == misses + 1


def test_module_list_and_task_clients_are_reused(aws: str) -> None:
    assert backends.list_of_moto_modules() is backends.list_of_moto_modules()
    assert "iot" in backends.list_of_moto_modules()
    first = moto_speedups.shared_client(PRIMARY, "lambda")
    assert moto_speedups.shared_client(PRIMARY, "lambda") is first
    assert moto_speedups.shared_client("us-west-2", "lambda") is not first


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception as err:
        return type(err)


def test_iot_lookups_by_key_answer_as_moto_scanning_does(aws: str) -> None:
    """Found resources, absent ones, and a certificate ARN of another region: the same object or error."""
    iot = boto3.client("iot", region_name=PRIMARY)
    iot.create_thing(thingName="t1")
    iot.create_policy(policyName="p1", policyDocument='{"Version": "2012-10-17", "Statement": []}')
    certificate = iot.create_keys_and_certificate(setAsActive=True)
    backend = iot_backends["123456789012"][PRIMARY]
    original = moto_speedups._patches.original
    other_region_arn = certificate["certificateArn"].replace(PRIMARY, "us-west-2")
    cases = [
        ("describe_thing", ["t1", "t2", "t"]),
        ("describe_certificate", [certificate["certificateId"], certificate["certificateId"][:-1] + "0"]),
        ("get_policy", ["p1", "p2"]),
        ("_get_principal", [certificate["certificateArn"], other_region_arn]),
    ]
    for name, keys in cases:
        for key in keys:
            expected = _outcome(original(IoTBackend, name), backend, key)
            assert _outcome(getattr(backend, name), key) == expected, (name, key)
