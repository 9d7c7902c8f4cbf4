from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from iot_dr_local import lambda_runtime
from iot_dr_local.dispatcher import Dispatcher

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"

WRITE_ITEM = """
    import os
    import boto3

    def handler(event, context):
        table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
        table.put_item(Item={"pk": event["pk"], "region": os.environ["AWS_REGION"]})
        return {"written": event["pk"]}
"""

RAISES = """
    from iot_dr.core.errors import DependencyNotReady

    def handler(event, context):
        if event.get("fail") == "dependency":
            raise DependencyNotReady("thing " + event["thing"] + " is not there yet")
        if event.get("fail") == "value":
            raise ValueError("bad value")
        return {"ok": event.get("thing")}
"""


def make_table(region: str = PRIMARY, name: str = "results") -> Any:
    dynamodb = boto3.resource("dynamodb", region_name=region)
    table = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


def test_invoke_runs_the_handler_from_the_zip_with_the_function_environment(
    make_function: Callable[..., str],
) -> None:
    table = make_table()
    make_function("writer", WRITE_ITEM, Environment={"Variables": {"TABLE_NAME": "results"}})

    response = boto3.client("lambda", region_name=PRIMARY).invoke(
        FunctionName="writer", Payload=json.dumps({"pk": "a"})
    )

    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"written": "a"}
    assert table.get_item(Key={"pk": "a"})["Item"] == {"pk": "a", "region": PRIMARY}


def test_function_environment_does_not_leak_into_the_process(make_function: Callable[..., str]) -> None:
    make_table()
    make_function("writer", WRITE_ITEM, Environment={"Variables": {"TABLE_NAME": "results"}})

    lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "writer", {"pk": "a"})

    assert "TABLE_NAME" not in os.environ
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_handler_exception_returns_the_lambda_error_payload(make_function: Callable[..., str]) -> None:
    make_function("raiser", RAISES)

    response = boto3.client("lambda", region_name=PRIMARY).invoke(
        FunctionName="raiser", Payload=json.dumps({"fail": "dependency", "thing": "t1"})
    )

    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "DependencyNotReady"
    assert error["errorMessage"] == "thing t1 is not there yet"
    assert any("/var/task/index.py" in frame for frame in error["stackTrace"])


def test_context_describes_the_invoked_function(make_function: Callable[..., str]) -> None:
    arn = make_function(
        "ctx",
        """
        def handler(event, context):
            return {
                "name": context.function_name,
                "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb,
                "request": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
            }
        """,
        MemorySize=256,
        Timeout=30,
    )

    result = lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "ctx", {})

    assert result["name"] == "ctx"
    assert result["arn"] == arn
    assert result["memory"] == 256
    assert uuid.UUID(result["request"])
    assert 0 < result["remaining"] <= 30_000


def test_code_from_s3_runs(lambdas: lambda_runtime.LambdaRuntime, package: Callable[[dict[str, str]], bytes]) -> None:
    s3 = boto3.client("s3", region_name=PRIMARY)
    s3.create_bucket(Bucket="code")
    s3.put_object(
        Bucket="code",
        Key="fn.zip",
        Body=package({"app/main.py": "def run(event, context):\n    return event['n'] * 2\n"}),
    )
    role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("lambda", region_name=PRIMARY).create_function(
        FunctionName="from-s3",
        Runtime="python3.11",
        Role=role,
        Handler="app.main.run",
        Code={"S3Bucket": "code", "S3Key": "fn.zip"},
    )

    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "from-s3", {"n": 21}) == 42


def test_functions_with_the_same_module_name_run_their_own_code(make_function: Callable[..., str]) -> None:
    make_function("one", "def handler(event, context):\n    return 1\n")
    make_function("two", "def handler(event, context):\n    return 2\n")

    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "one", {}) == 1
    assert lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "two", {}) == 2


def test_invoke_function_raises_with_the_error_type(make_function: Callable[..., str]) -> None:
    make_function("raiser", RAISES)

    with pytest.raises(lambda_runtime.LambdaInvocationError) as raised:
        lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "raiser", {"fail": "value"})

    assert raised.value.error_type == "ValueError"
    assert raised.value.message == "bad value"


def test_missing_handler_module_is_an_import_error(make_function: Callable[..., str]) -> None:
    make_function("broken", "def handler(event, context):\n    return 1\n", handler="index.handler")
    boto3.client("lambda", region_name=PRIMARY).update_function_configuration(
        FunctionName="broken", Handler="missing.handler"
    )

    with pytest.raises(lambda_runtime.LambdaInvocationError) as raised:
        lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "broken", {})

    assert raised.value.error_type == "Runtime.ImportModuleError"


def test_invoke_function_by_arn_reaches_the_function_region(make_function: Callable[..., str]) -> None:
    table = make_table(SECONDARY)
    arn = make_function("writer", WRITE_ITEM, region=SECONDARY, Environment={"Variables": {"TABLE_NAME": "results"}})

    lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, arn, {"pk": "x"})

    assert table.get_item(Key={"pk": "x"})["Item"]["region"] == SECONDARY


def test_event_invocation_runs_later_in_the_background(
    make_function: Callable[..., str], dispatcher: Dispatcher
) -> None:
    table = make_table()
    make_function("writer", WRITE_ITEM, Environment={"Variables": {"TABLE_NAME": "results"}})

    response = boto3.client("lambda", region_name=PRIMARY).invoke(
        FunctionName="writer", InvocationType="Event", Payload=json.dumps({"pk": "later"})
    )

    assert response["StatusCode"] == 202
    assert dispatcher.wait_idle(timeout=10)
    assert "Item" in table.get_item(Key={"pk": "later"})


def test_failing_async_invocation_is_retried_twice_then_dead_lettered(
    make_function: Callable[..., str], dispatcher: Dispatcher
) -> None:
    sqs = boto3.client("sqs", region_name=PRIMARY)
    queue_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    arn = make_function("raiser", RAISES, DeadLetterConfig={"TargetArn": queue_arn})
    lambda_runtime.invocation_stats(reset=True)

    lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "raiser", {"fail": "value"}, asynchronous=True)

    assert dispatcher.wait_idle(timeout=10)
    assert lambda_runtime.invocation_stats()[arn]["count"] == 3
    messages = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(messages[0]["Body"]) == {"fail": "value"}
    assert messages[0]["MessageAttributes"]["ErrorMessage"]["StringValue"] == "bad value"


def test_dead_letter_config_is_stored_on_the_function(make_function: Callable[..., str]) -> None:
    target = f"arn:aws:sqs:{PRIMARY}:{ACCOUNT_ID}:dlq"
    make_function("fn", "def handler(e, c):\n    return 1\n", DeadLetterConfig={"TargetArn": target})

    configuration = boto3.client("lambda", region_name=PRIMARY).get_function_configuration(FunctionName="fn")

    assert configuration["DeadLetterConfig"] == {"TargetArn": target}


def test_invocation_stats_count_calls_errors_and_time_and_reset(make_function: Callable[..., str]) -> None:
    arn = make_function("raiser", RAISES)
    lambda_runtime.invocation_stats(reset=True)

    lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "raiser", {"thing": "a"})
    with pytest.raises(lambda_runtime.LambdaInvocationError):
        lambda_runtime.invoke_function(ACCOUNT_ID, PRIMARY, "raiser", {"fail": "value"})

    stats = lambda_runtime.invocation_stats(reset=True)[arn]
    assert (stats["count"], stats["errors"]) == (2, 1)
    assert stats["seconds"] > 0
    assert lambda_runtime.invocation_stats() == {}


def _state_machine(function_arn: str) -> str:
    return json.dumps(
        {
            "StartAt": "Apply",
            "States": {
                "Apply": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                    "OutputPath": "$.Payload",
                    "Retry": [
                        {
                            "ErrorEquals": ["DependencyNotReady"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 1,
                            "BackoffRate": 1,
                        }
                    ],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Park"}],
                    "End": True,
                },
                "Park": {"Type": "Pass", "End": True},
            },
        }
    )


def _run_execution(sfn: Any, machine_arn: str, payload: dict[str, str]) -> dict[str, Any]:
    execution_arn = sfn.start_execution(stateMachineArn=machine_arn, name=str(uuid.uuid4()), input=json.dumps(payload))[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return dict(execution)
        time.sleep(0.1)
    raise AssertionError("execution did not finish")


def test_step_functions_retry_and_catch_match_the_handler_exception_class(
    make_function: Callable[..., str],
) -> None:
    function_arn = make_function("apply", RAISES)
    role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=PRIMARY)
    machine = sfn.create_state_machine(name="apply", definition=_state_machine(function_arn), roleArn=role)
    lambda_runtime.invocation_stats(reset=True)

    succeeded = _run_execution(sfn, machine["stateMachineArn"], {"thing": "t1"})
    retried = _run_execution(sfn, machine["stateMachineArn"], {"thing": "t2", "fail": "dependency"})
    not_retried = _run_execution(sfn, machine["stateMachineArn"], {"thing": "t3", "fail": "value"})

    assert succeeded["status"] == "SUCCEEDED"
    assert json.loads(succeeded["output"]) == {"ok": "t1"}
    assert retried["status"] == "SUCCEEDED"
    assert json.loads(retried["output"])["error"]["Error"] == "DependencyNotReady"
    assert json.loads(not_retried["output"])["error"]["Error"] == "ValueError"
    # one call for t1, two (one retry) for DependencyNotReady, one for ValueError which Retry does not list
    assert lambda_runtime.invocation_stats()[function_arn]["count"] == 4
