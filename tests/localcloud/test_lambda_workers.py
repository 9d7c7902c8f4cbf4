"""Lambda functions run in worker processes of their own, within their concurrency limits, and cannot take the
local cloud down."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from iot_dr_local import lambda_runtime

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"

REPORT_PROCESS = """
    import os

    def handler(event, context):
        return {"pid": os.getpid(), "colour": os.environ.get("COLOUR"), "host_only": os.environ.get("HOST_ONLY")}
"""

# Each invocation leaves a marker (kept) and waits up to ``wait`` seconds until ``expect`` markers exist; it reports how
# many it saw, and whether another invocation was inside its critical section (marked by "inside") at the same time.
RENDEZVOUS = """
    import os
    import time
    import uuid

    def handler(event, context):
        directory = event["directory"]
        marker = os.path.join(directory, str(uuid.uuid4()))
        try:
            exclusive = os.open(os.path.join(directory, "inside"), os.O_CREAT | os.O_EXCL)
            overlapped = False
        except FileExistsError:
            exclusive, overlapped = None, True
        open(marker, "w").close()
        deadline = time.monotonic() + event["wait"]
        markers = lambda: len([name for name in os.listdir(directory) if name != "inside"])
        while time.monotonic() < deadline and markers() < event["expect"]:
            time.sleep(0.05)
        seen = markers()
        if exclusive is not None:
            os.close(exclusive)
            os.remove(os.path.join(directory, "inside"))
        return {"seen": seen, "overlapped": overlapped}
"""


def _concurrently(count: int, call: Callable[[], object]) -> list[object]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return [future.result() for future in [pool.submit(call) for _ in range(count)]]


def test_each_function_runs_in_a_process_of_its_own_with_its_own_environment(
    make_function: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY", "leak")
    make_function("red", REPORT_PROCESS, Environment={"Variables": {"COLOUR": "red"}})
    make_function("blue", REPORT_PROCESS, Environment={"Variables": {"COLOUR": "blue"}})

    def invoke(name: str) -> dict[str, object]:
        result: dict[str, object] = lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, name, {})
        return result

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(invoke, ["red", "blue"] * 4))

    assert [result["colour"] for result in results] == ["red", "blue"] * 4
    assert all(result["host_only"] is None for result in results)
    assert os.getpid() not in {result["pid"] for result in results}
    red_pids = {result["pid"] for result in results[0::2]}
    blue_pids = {result["pid"] for result in results[1::2]}
    assert not red_pids & blue_pids


def test_a_warm_environment_is_reused_until_the_configuration_changes(make_function: Callable[..., str]) -> None:
    make_function("fn", REPORT_PROCESS, Environment={"Variables": {"COLOUR": "red"}})
    first = lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "fn", {})
    second = lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "fn", {})
    boto3.client("lambda", region_name=PRIMARY).update_function_configuration(
        FunctionName="fn", Environment={"Variables": {"COLOUR": "green"}}
    )

    third = lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "fn", {})

    assert first["pid"] == second["pid"]
    assert third["pid"] != first["pid"]
    assert third["colour"] == "green"


def test_concurrent_invocations_of_one_function_run_side_by_side(
    make_function: Callable[..., str], tmp_path: Path
) -> None:
    make_function("meet", RENDEZVOUS, Timeout=60)
    event = {"directory": str(tmp_path), "expect": 3, "wait": 30}

    results = _concurrently(3, lambda: lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "meet", event))

    # Markers are kept, so only invocations that ran at the same time as the others can all have seen three.
    assert [result["seen"] for result in results] == [3, 3, 3]  # type: ignore[index]


def test_reserved_concurrency_of_one_never_runs_two_invocations_at_once(
    make_function: Callable[..., str], tmp_path: Path
) -> None:
    make_function("single", RENDEZVOUS, Timeout=60)
    boto3.client("lambda", region_name=PRIMARY).put_function_concurrency(
        FunctionName="single", ReservedConcurrentExecutions=1
    )
    # Each stays inside its critical section for a while, waiting for company that must never arrive in time.
    event = {"directory": str(tmp_path), "expect": 5, "wait": 0.5}

    results = _concurrently(4, lambda: lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "single", event))

    assert [result["overlapped"] for result in results] == [False] * 4  # type: ignore[index]


def test_a_crashing_handler_is_a_function_error_and_the_cloud_keeps_serving(
    make_function: Callable[..., str],
) -> None:
    make_function(
        "crash",
        """
        import os
        import signal

        def handler(event, context):
            if event.get("crash"):
                print("about to crash", flush=True)
                os.kill(os.getpid(), signal.SIGSEGV)
            return "fine"
        """,
    )
    make_function("other", REPORT_PROCESS)

    response = boto3.client("lambda", region_name=PRIMARY).invoke(
        FunctionName="crash", Payload=b'{"crash": true}', LogType="Tail"
    )

    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ExitError"
    assert "segmentation fault" in error["errorMessage"]
    assert "about to crash" in base64.b64decode(response["LogResult"]).decode()
    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "crash", {}) == "fine"
    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "other", {})["pid"] != os.getpid()


def test_a_handler_past_its_timeout_is_stopped_with_a_sandbox_timeout(make_function: Callable[..., str]) -> None:
    make_function(
        "slow",
        """
        import time

        def handler(event, context):
            if event.get("sleep"):
                time.sleep(event["sleep"])
            return "done"
        """,
        Timeout=1,
    )

    with pytest.raises(lambda_runtime.LambdaInvocationError) as raised:
        lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "slow", {"sleep": 60})

    assert raised.value.error_type == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in raised.value.message
    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "slow", {}) == "done"


def test_what_a_handler_prints_does_not_disturb_its_response(make_function: Callable[..., str]) -> None:
    make_function(
        "noisy",
        """
        import os
        import sys
        import logging

        print("starting up")

        def handler(event, context):
            print("x" * 200_000)
            sys.stderr.write("to stderr\\n")
            logging.getLogger().warning("a log line")
            os.write(1, b"\\x00\\x00\\x00\\x05{} {}")
            os.write(2, b"\\x00\\x00\\x00\\x02[]")
            return {"answer": event["n"] + 1}
        """,
    )

    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "noisy", {"n": 41}) == {"answer": 42}
    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "noisy", {"n": 1}) == {"answer": 2}


def test_layers_are_on_the_path_under_opt_python(
    make_function: Callable[..., str], package: Callable[[dict[str, str]], bytes]
) -> None:
    client = boto3.client("lambda", region_name=PRIMARY)
    layer = client.publish_layer_version(
        LayerName="shared", Content={"ZipFile": package({"python/shared_words.py": "WORD = 'from the layer'\n"})}
    )["LayerVersionArn"]
    make_function(
        "uses-layer",
        """
        import shared_words

        def handler(event, context):
            return [shared_words.WORD, shared_words.__file__]
        """,
        Layers=[layer],
    )

    word, path = lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "uses-layer", {})

    assert word == "from the layer"
    assert not path.startswith(str(Path(__file__).parents[2]))


def test_step_functions_executions_run_their_lambda_tasks_side_by_side(
    make_function: Callable[..., str], tmp_path: Path
) -> None:
    function_arn = make_function("meet", RENDEZVOUS, Timeout=60)
    definition = {
        "StartAt": "Meet",
        "States": {
            "Meet": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=PRIMARY)
    machine = sfn.create_state_machine(name="meet", definition=json.dumps(definition), roleArn=role)["stateMachineArn"]
    event = json.dumps({"directory": str(tmp_path), "expect": 2, "wait": 30})

    executions = [
        sfn.start_execution(stateMachineArn=machine, name=f"meet-{index}", input=event)["executionArn"]
        for index in range(2)
    ]
    outputs = [_finished(sfn, execution) for execution in executions]

    assert [json.loads(output)["seen"] for output in outputs] == [2, 2]


def _finished(sfn: Any, execution_arn: str) -> str:
    waiter_deadline = time.monotonic() + 60
    while time.monotonic() < waiter_deadline:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            assert execution["status"] == "SUCCEEDED", execution
            return str(execution["output"])
        time.sleep(0.1)
    raise AssertionError(f"{execution_arn} did not finish")
