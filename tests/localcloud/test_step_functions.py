"""StartSyncExecution as AWS documents it, the Express time limit, and injected execution failures.

https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartSyncExecution.html
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from iot_dr.core import aws as iot_dr_aws
from iot_dr_local.faults import FaultInjector
from iot_dr_local.step_functions import StepFunctionsExtension

PRIMARY = "us-east-1"
PASS = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Parameters": {"got.$": "$.value"}, "End": True}}}
FAIL = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}}
WAIT = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3, "End": True}}}


@pytest.fixture
def extension(aws: str) -> Iterator[StepFunctionsExtension]:
    faults = FaultInjector()
    extension = StepFunctionsExtension(faults)
    extension.install()
    iot_dr_aws.clear_client_cache()
    yield extension
    extension.uninstall()
    iot_dr_aws.clear_client_cache()


def machine(definition: dict[str, Any], machine_type: str = "EXPRESS") -> str:
    role = boto3.client("iam").create_role(RoleName=f"sfn-{time.monotonic_ns()}", AssumeRolePolicyDocument="{}")
    return str(
        boto3.client("stepfunctions", region_name=PRIMARY).create_state_machine(
            name=f"m-{time.monotonic_ns()}",
            definition=json.dumps(definition),
            roleArn=role["Role"]["Arn"],
            type=machine_type,
        )["stateMachineArn"]
    )


def sfn() -> Any:
    """The solution's own client: under AWS_ENDPOINT_URL, StartSyncExecution's sync- host prefix is not added."""
    return iot_dr_aws.client("stepfunctions", PRIMARY)


def test_a_sync_execution_answers_with_the_documented_shape(extension: StepFunctionsExtension) -> None:
    arn = machine(PASS)
    response = sfn().start_sync_execution(stateMachineArn=arn, name="shape", input=json.dumps({"value": 7}))

    assert response["status"] == "SUCCEEDED"
    assert json.loads(response["output"]) == {"got": 7}
    assert json.loads(response["input"]) == {"value": 7}
    assert response["name"] == "shape"
    assert response["stateMachineArn"] == arn
    # Express execution ARNs name the machine and the execution after "express".
    assert response["executionArn"].startswith(arn.replace(":stateMachine:", ":express:") + ":shape:")
    assert response["stopDate"] >= response["startDate"]
    billing = response["billingDetails"]
    assert billing["billedDurationInMilliseconds"] % 100 == 0 and billing["billedDurationInMilliseconds"] >= 100
    assert billing["billedMemoryUsedInMB"] == 64
    assert "error" not in response and "cause" not in response


def test_a_failed_sync_execution_reports_its_error_and_cause(extension: StepFunctionsExtension) -> None:
    response = sfn().start_sync_execution(stateMachineArn=machine(FAIL))
    assert (response["status"], response["error"], response["cause"]) == ("FAILED", "Boom", "it broke")
    assert "output" not in response


def test_a_standard_state_machine_is_refused(extension: StepFunctionsExtension) -> None:
    with pytest.raises(ClientError) as raised:
        sfn().start_sync_execution(stateMachineArn=machine(PASS, "STANDARD"))
    assert raised.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_input_that_is_not_json_is_refused(extension: StepFunctionsExtension) -> None:
    with pytest.raises(ClientError) as raised:
        sfn().start_sync_execution(stateMachineArn=machine(PASS), input="{not json")
    assert raised.value.response["Error"]["Code"] == "InvalidExecutionInput"


def test_an_express_execution_past_its_time_limit_times_out(extension: StepFunctionsExtension) -> None:
    extension.express_max_duration = 0.5
    started = time.monotonic()
    response = sfn().start_sync_execution(stateMachineArn=machine(WAIT))
    assert response["status"] == "TIMED_OUT"
    assert response["error"] == "States.Timeout"
    assert time.monotonic() - started < 2.5


def test_a_standard_execution_has_no_express_time_limit(extension: StepFunctionsExtension) -> None:
    extension.express_max_duration = 0.5
    client = boto3.client("stepfunctions", region_name=PRIMARY)
    arn = client.start_execution(stateMachineArn=machine(WAIT, "STANDARD"), name="long")["executionArn"]
    deadline = time.monotonic() + 10
    while (status := client.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status == "SUCCEEDED"


def test_injected_execution_failures_fail_that_many_executions(extension: StepFunctionsExtension) -> None:
    extension._faults.fail_executions(PRIMARY, times=1, error="States.Runtime", cause="injected")
    arn = machine(PASS)
    first = sfn().start_sync_execution(stateMachineArn=arn, input=json.dumps({"value": 1}))
    second = sfn().start_sync_execution(stateMachineArn=arn, input=json.dumps({"value": 2}))
    assert (first["status"], first["error"], first["cause"]) == ("FAILED", "States.Runtime", "injected")
    assert (second["status"], json.loads(second["output"])) == ("SUCCEEDED", {"got": 2})
