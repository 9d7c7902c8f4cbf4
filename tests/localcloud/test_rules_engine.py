from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from iot_dr_local import internal_errors, moto_fixes, rules_engine
from iot_dr_local.api_calls import ApiCallRecorder, by_solution
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.lambda_runtime import LAMBDA_ACCESS_KEY_PREFIX
from iot_dr_local.rules_engine import RULES_ENGINE_ACCESS_KEY, RulesEngine

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
ERROR_MESSAGE_KEYS = {"ruleName", "topic", "cloudwatchTraceId", "clientId", "base64OriginalPayload", "failures"}
FAILURE_KEYS = {"failedAction", "failedResource", "errorMessage"}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/iot-rules"


@pytest.fixture
def engine(aws: str, dispatcher: Dispatcher) -> Iterator[RulesEngine]:
    rules = RulesEngine(dispatcher)
    rules.install()
    yield rules
    rules.uninstall()


def create_table(name: str, region: str = PRIMARY) -> None:
    boto3.client("dynamodb", region_name=region).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "uuid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "uuid", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def create_queue(name: str, region: str = PRIMARY) -> str:
    return str(boto3.client("sqs", region_name=region).create_queue(QueueName=name)["QueueUrl"])


def aws_queue_url(name: str, region: str = PRIMARY) -> str:
    """The queue URL as CloudFormation's Ref gives it to a rule."""
    return f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{name}"


def receive(queue_url: str, region: str = PRIMARY) -> list[str]:
    messages = boto3.client("sqs", region_name=region).receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [message["Body"] for message in messages.get("Messages", [])]


def create_rule(
    name: str,
    sql: str,
    actions: list[dict[str, Any]],
    error_action: dict[str, Any] | None = None,
    region: str = PRIMARY,
    disabled: bool = False,
) -> None:
    payload: dict[str, Any] = {"sql": sql, "actions": actions, "ruleDisabled": disabled}
    payload["awsIotSqlVersion"] = "2016-03-23"
    if error_action is not None:
        payload["errorAction"] = error_action
    boto3.client("iot", region_name=region).create_topic_rule(ruleName=name, topicRulePayload=payload)


def dynamo_action(table: str) -> dict[str, Any]:
    return {"dynamoDBv2": {"roleArn": ROLE_ARN, "putItem": {"tableName": table}}}


def sqs_action(queue: str, use_base64: bool = False, region: str = PRIMARY) -> dict[str, Any]:
    return {"sqs": {"roleArn": ROLE_ARN, "queueUrl": aws_queue_url(queue, region), "useBase64": use_base64}}


def publish(topic: str, payload: Any, region: str = PRIMARY) -> None:
    boto3.client("iot-data", region_name=region).publish(topic=topic, qos=1, payload=json.dumps(payload).encode())


def test_iot_data_publish_writes_the_select_result_as_a_typed_dynamodb_item(
    engine: RulesEngine, dispatcher: Dispatcher
) -> None:
    create_table("replication")
    create_rule(
        "ToTable",
        "SELECT *, newuuid() AS uuid, (timestamp() / 1000) + 172800 AS expires FROM 'dt/+/telemetry'",
        [dynamo_action("replication")],
    )
    message = {"name": "dev-1", "count": 3, "ratio": 0.25, "on": True, "none": None}
    message |= {"tags": ["a", 1], "nested": {"x": 1}}

    publish("dt/dev-1/telemetry", message)
    assert dispatcher.wait_idle(timeout=30)

    items = boto3.client("dynamodb", region_name=PRIMARY).scan(TableName="replication")["Items"]
    assert len(items) == 1
    item = items[0]
    assert item["name"] == {"S": "dev-1"}
    assert item["count"] == {"N": "3"}
    assert item["ratio"] == {"N": "0.25"}
    assert item["on"] == {"BOOL": True}
    assert item["none"] == {"NULL": True}
    assert item["tags"] == {"L": [{"S": "a"}, {"N": "1"}]}
    assert item["nested"] == {"M": {"x": {"N": "1"}}}
    assert set(item) == set(message) | {"uuid", "expires"}
    table = boto3.resource("dynamodb", region_name=PRIMARY).Table("replication")
    assert isinstance(table.scan()["Items"][0]["expires"], Decimal)
    assert engine.stats(ACCOUNT_ID, PRIMARY, "ToTable").actions_ok == 1


def test_publish_returns_before_the_rules_run_and_the_engine_reports_busy(aws: str) -> None:
    workers = Dispatcher(workers=1)
    engine = RulesEngine(workers)
    engine.install()
    release = threading.Event()
    try:
        create_queue("out")
        create_rule("Forward", "SELECT * FROM 'a/b'", [sqs_action("out")])
        workers.submit(release.wait, 30)

        publish("a/b", {"n": 1})

        assert engine.stats(ACCOUNT_ID, PRIMARY, "Forward").matched == 0
        assert engine.busy() and workers.busy()
        release.set()
        assert workers.wait_idle(timeout=30)
        assert engine.stats(ACCOUNT_ID, PRIMARY, "Forward").matched == 1
        assert not engine.busy()
    finally:
        release.set()
        engine.uninstall()
        workers.shutdown()


def test_only_enabled_rules_of_the_publishing_region_whose_sql_matches_run(
    engine: RulesEngine, dispatcher: Dispatcher
) -> None:
    primary_queue = create_queue("primary-out")
    secondary_queue = create_queue("secondary-out", SECONDARY)
    create_rule("Matching", "SELECT * FROM 'a/+' WHERE n > 1", [sqs_action("primary-out")])
    create_rule("Disabled", "SELECT * FROM 'a/+'", [sqs_action("primary-out")], disabled=True)
    create_rule("OtherTopic", "SELECT * FROM 'b/#'", [sqs_action("primary-out")])
    create_rule("OtherRegion", "SELECT * FROM 'a/+'", [sqs_action("secondary-out", region=SECONDARY)], region=SECONDARY)

    publish("a/x", {"n": 2})
    publish("a/x", {"n": 1})
    assert dispatcher.wait_idle(timeout=30)

    assert [json.loads(body) for body in receive(primary_queue)] == [{"n": 2}]
    assert receive(secondary_queue, SECONDARY) == []
    assert engine.stats(ACCOUNT_ID, PRIMARY, "Matching").matched == 1
    for silent in ("Disabled", "OtherTopic"):
        assert engine.stats(ACCOUNT_ID, PRIMARY, silent).matched == 0
    assert engine.stats(ACCOUNT_ID, SECONDARY, "OtherRegion").matched == 0


def test_sqs_action_sends_json_or_base64_encoded_json(engine: RulesEngine, dispatcher: Dispatcher) -> None:
    plain, encoded = create_queue("plain"), create_queue("encoded")
    create_rule("Plain", "SELECT * FROM 'a'", [sqs_action("plain")])
    create_rule("Encoded", "SELECT * FROM 'a'", [sqs_action("encoded", use_base64=True)])

    publish("a", {"k": "v"})
    assert dispatcher.wait_idle(timeout=30)

    assert [json.loads(body) for body in receive(plain)] == [{"k": "v"}]
    assert [json.loads(base64.b64decode(body)) for body in receive(encoded)] == [{"k": "v"}]


def test_failing_action_sends_the_documented_error_message_to_the_error_action(
    engine: RulesEngine, dispatcher: Dispatcher
) -> None:
    errors = create_queue("rule-errors")
    create_table("present")
    create_rule(
        "Capture",
        "SELECT *, newuuid() AS uuid FROM 'dt/#'",
        [dynamo_action("missing-table"), dynamo_action("present")],
        error_action=sqs_action("rule-errors"),
    )
    original = json.dumps({"k": "v"}).encode()

    boto3.client("iot-data", region_name=PRIMARY).publish(topic="dt/x", qos=1, payload=original)
    assert dispatcher.wait_idle(timeout=30)

    bodies = receive(errors)
    assert len(bodies) == 1
    error = json.loads(bodies[0])
    assert set(error) == ERROR_MESSAGE_KEYS
    assert error["ruleName"] == "Capture"
    assert error["topic"] == "dt/x"
    assert error["clientId"] == "n/a"
    assert base64.b64decode(error["base64OriginalPayload"]) == original
    assert [set(failure) for failure in error["failures"]] == [FAILURE_KEYS]
    failure = error["failures"][0]
    assert failure["failedAction"] == "DynamoDBv2Action"
    assert failure["failedResource"] == "missing-table"
    assert "ResourceNotFoundException" in failure["errorMessage"]
    stats = engine.stats(ACCOUNT_ID, PRIMARY, "Capture")
    assert (stats.matched, stats.actions_ok, stats.actions_failed, stats.error_actions_ok) == (1, 1, 1, 1)


def test_every_failed_action_of_a_message_is_reported_in_one_error_message(
    engine: RulesEngine, dispatcher: Dispatcher
) -> None:
    errors = create_queue("rule-errors")
    republish = {"republish": {"roleArn": ROLE_ARN, "topic": "elsewhere"}}
    create_rule("Broken", "SELECT * FROM 'x'", [republish, sqs_action("no-such-queue")], sqs_action("rule-errors"))

    publish("x", {})
    assert dispatcher.wait_idle(timeout=30)

    (body,) = receive(errors)
    failures = json.loads(body)["failures"]
    assert [failure["failedAction"] for failure in failures] == ["RepublishAction", "SqsAction"]
    assert failures[1]["failedResource"] == aws_queue_url("no-such-queue")
    assert engine.stats(ACCOUNT_ID, PRIMARY, "Broken").actions_failed == 2


def test_failing_error_action_is_counted(engine: RulesEngine, dispatcher: Dispatcher) -> None:
    create_rule("Lost", "SELECT * FROM 'x'", [dynamo_action("missing")], sqs_action("missing-errors"))

    publish("x", {})
    assert dispatcher.wait_idle(timeout=30)

    stats = engine.stats(ACCOUNT_ID, PRIMARY, "Lost")
    assert (stats.actions_failed, stats.error_actions_ok, stats.error_actions_failed) == (1, 0, 1)


FORWARD_EVENT = """
    import json
    import os
    import boto3

    def handler(event, context):
        boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
"""


def test_lambda_action_invokes_the_function_asynchronously_with_the_select_result(
    engine: RulesEngine, dispatcher: Dispatcher, make_function: Callable[..., str]
) -> None:
    queue = create_queue("seen")
    function_arn = make_function("jitr", FORWARD_EVENT, Environment={"Variables": {"QUEUE_URL": queue}})
    create_rule(
        "Jitr",
        "SELECT *, topic(5) AS ca FROM '$aws/events/certificates/registered/+'",
        [{"lambda": {"functionArn": function_arn}}],
    )

    publish("$aws/events/certificates/registered/abc", {"certificateStatus": "PENDING_ACTIVATION"})
    assert dispatcher.wait_idle(timeout=30)

    assert [json.loads(body) for body in receive(queue)] == [{"certificateStatus": "PENDING_ACTIVATION", "ca": "abc"}]


def test_lambda_action_for_a_missing_function_fails_into_the_error_action(
    engine: RulesEngine, dispatcher: Dispatcher, make_function: Callable[..., str]
) -> None:
    errors = create_queue("rule-errors")
    missing = f"arn:aws:lambda:{PRIMARY}:{ACCOUNT_ID}:function:missing"
    create_rule("NoFunction", "SELECT * FROM 'x'", [{"lambda": {"functionArn": missing}}], sqs_action("rule-errors"))

    publish("x", {})
    assert dispatcher.wait_idle(timeout=30)

    (body,) = receive(errors)
    failure = json.loads(body)["failures"][0]
    assert (failure["failedAction"], failure["failedResource"]) == ("LambdaAction", missing)


@pytest.mark.parametrize(
    ("sql", "version"),
    [
        ("SELECT lower(name) AS n FROM 'x'", "2016-03-23"),
        ("SELECT * FROM 'a/#/b'", "2016-03-23"),
        ("SELECT * FROM 'x'", "2015-10-08"),
    ],
)
def test_create_topic_rule_rejects_sql_the_local_engine_cannot_run(engine: RulesEngine, sql: str, version: str) -> None:
    iot = boto3.client("iot", region_name=PRIMARY)
    with pytest.raises(ClientError) as raised:
        iot.create_topic_rule(ruleName="Bad", topicRulePayload={"sql": sql, "actions": [], "awsIotSqlVersion": version})
    assert raised.value.response["Error"]["Code"] == "SqlParseException"
    assert iot.list_topic_rules()["rules"] == []


def test_replacing_a_rule_with_sql_the_engine_cannot_run_keeps_the_old_rule(engine: RulesEngine) -> None:
    create_rule("Kept", "SELECT * FROM 'x'", [])
    iot = boto3.client("iot", region_name=PRIMARY)
    unsupported = {"sql": "SELECT upper(a) AS b FROM 'x'", "actions": []}

    with pytest.raises(ClientError) as raised:
        iot.replace_topic_rule(ruleName="Kept", topicRulePayload=unsupported)

    assert raised.value.response["Error"]["Code"] == "SqlParseException"
    assert iot.get_topic_rule(ruleName="Kept")["rule"]["sql"] == "SELECT * FROM 'x'"


def test_engine_publish_accepts_messages_from_the_local_cloud_itself(
    engine: RulesEngine, dispatcher: Dispatcher
) -> None:
    queue = create_queue("out")
    create_rule("WithClient", "SELECT clientid() AS c, topic(2) AS t FROM 'a/+'", [sqs_action("out")])

    engine.publish(ACCOUNT_ID, PRIMARY, "a/b", b"not json", client_id="dev-1")
    assert dispatcher.wait_idle(timeout=30)

    assert [json.loads(body) for body in receive(queue)] == [{"c": "dev-1", "t": "b"}]


def test_reset_clears_counters_and_uninstall_stops_routing_iot_data(
    engine: RulesEngine, dispatcher: Dispatcher
) -> None:
    queue = create_queue("out")
    create_rule("Counted", "SELECT * FROM 'a'", [sqs_action("out")])
    publish("a", {})
    assert dispatcher.wait_idle(timeout=30)
    assert engine.stats(ACCOUNT_ID, PRIMARY, "Counted").matched == 1

    engine.reset()
    engine.uninstall()
    publish("a", {})
    assert dispatcher.wait_idle(timeout=30)

    assert engine.stats(ACCOUNT_ID, PRIMARY, "Counted").matched == 0
    assert len(receive(queue)) == 1


@pytest.fixture
def fixed_moto(aws: str) -> Iterator[None]:
    """DynamoDB as AWS runs it (38-digit numbers), for actions whose failure comes from DynamoDB itself."""
    moto_fixes.install()
    yield
    moto_fixes.uninstall()


@pytest.mark.parametrize("number", ["1e200", "1" * 42], ids=["out-of-range", "42-digits"])
def test_a_number_dynamodb_cannot_store_fails_the_action_into_the_error_action(
    fixed_moto: None, engine: RulesEngine, dispatcher: Dispatcher, number: str
) -> None:
    """The DynamoDBv2 action fails and the error action gets the message
    (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html); DynamoDB refuses numbers
    beyond 38 digits or its range
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html)."""
    errors = create_queue("rule-errors")
    create_table("shadows")
    create_rule(
        "Store",
        "SELECT *, newuuid() AS uuid FROM 'dt/#'",
        [dynamo_action("shadows")],
        error_action=sqs_action("rule-errors"),
    )
    original = b'{"state": {"reported": {"v": ' + number.encode() + b"}}}"

    boto3.client("iot-data", region_name=PRIMARY).publish(topic="dt/bad", qos=1, payload=original)
    publish("dt/good", {"state": {"reported": {"v": 1}}})
    assert dispatcher.wait_idle(timeout=30)

    [body] = receive(errors)
    error = json.loads(body)
    assert base64.b64decode(error["base64OriginalPayload"]) == original
    [failure] = error["failures"]
    assert failure["failedAction"] == "DynamoDBv2Action"
    assert "ValidationException" in failure["errorMessage"]
    items = boto3.client("dynamodb", region_name=PRIMARY).scan(TableName="shadows")["Items"]
    assert [item["state"]["M"]["reported"]["M"]["v"] for item in items] == [{"N": "1"}]


def test_an_emulator_fault_in_an_action_is_counted_and_reported_to_the_error_action(
    engine: RulesEngine, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = create_queue("rule-errors")
    create_table("kept")

    def broken(account_id: str, region: str, config: dict[str, Any], message: Any) -> None:
        raise KeyError("emulator bug")

    monkeypatch.setitem(rules_engine.ACTIONS, "lambda", (broken, lambda config: config["functionArn"]))
    function_arn = f"arn:aws:lambda:{PRIMARY}:{ACCOUNT_ID}:function:f"
    create_rule("Broken", "SELECT * FROM 'b'", [{"lambda": {"functionArn": function_arn}}], sqs_action("rule-errors"))
    create_rule("Fine", "SELECT *, newuuid() AS uuid FROM 'b'", [dynamo_action("kept")])
    internal_errors.reset()

    publish("b", {"n": 1})
    publish("b", {"n": 2})
    assert dispatcher.wait_idle(timeout=30)

    assert internal_errors.counts() == {"rules-engine": 2}
    failures = [json.loads(body)["failures"][0] for body in receive(errors)]
    assert [f["failedResource"] for f in failures] == [function_arn, function_arn]
    assert all(f["errorMessage"].startswith("InternalFailure: KeyError") for f in failures)
    assert len(boto3.client("dynamodb", region_name=PRIMARY).scan(TableName="kept")["Items"]) == 2


def test_rule_actions_are_credited_to_the_rules_engine_not_to_a_running_lambda_function(
    engine: RulesEngine, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_table("credited")
    create_rule("Credited", "SELECT *, newuuid() AS uuid FROM 'credit/+'", [dynamo_action("credited")])
    recorder = ApiCallRecorder()
    recorder.install()
    try:
        # A Lambda function running in this process at the same time signs with its own key.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"{LAMBDA_ACCESS_KEY_PREFIX}SomeFunction")
        publish("credit/dev-1", {"n": 1})
        assert dispatcher.wait_idle(timeout=30)
        calls = recorder.snapshot()
    finally:
        recorder.uninstall()
    put_items = {call.caller for call in calls if call.operation == "put_item"}
    assert put_items == {RULES_ENGINE_ACCESS_KEY}
    assert by_solution(calls)[(PRIMARY, "dynamodb", "put_item")] == 1
