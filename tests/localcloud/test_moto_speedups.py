"""moto's per-request work is done once: module list, parsed state machine definitions, task clients."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from moto import backends

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
