from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from iot_dr_local import internal_errors, streams
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.lambda_runtime import LambdaRuntime
from iot_dr_local.streams import StreamPoller

REGION = "us-west-2"

# Logs every batch it receives to the "invocations" table, then behaves as MODE says. Module globals
# survive between invocations, as in a warm Lambda container.
CONSUMER = """
    import json
    import os
    import time
    import boto3

    attempts = {}

    def handler(event, context):
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        boto3.resource("dynamodb").Table("invocations").put_item(
            Item={"at": time.time_ns(), "keys": keys, "event": json.dumps(event)}
        )
        for key in keys:
            attempts[key] = attempts.get(key, 0) + 1
        mode = os.environ.get("MODE", "")
        poisoned = [r for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"].startswith("poison")]
        if mode == "raise_on_poison" and poisoned:
            raise RuntimeError("poison in batch")
        if mode == "raise_once" and attempts[keys[0]] == 1:
            raise RuntimeError("first attempt fails")
        if mode == "report_poison_once":
            return {"batchItemFailures": [
                {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                for r in poisoned if attempts[r["dynamodb"]["Keys"]["pk"]["S"]] == 1
            ]}
        return {"batchItemFailures": []}
"""


@pytest.fixture
def poller(lambdas: LambdaRuntime, dispatcher: Dispatcher) -> Iterator[StreamPoller]:
    stream_poller = StreamPoller(dispatcher, poll_interval=0.02, retry_backoff=0.01, max_backoff=0.05)
    stream_poller.start()
    yield stream_poller
    stream_poller.stop()


@pytest.fixture
def source() -> Any:
    """A table with a NEW_AND_OLD_IMAGES stream, plus the table the consumer logs to."""
    # Shards record as DynamoDB does even in a test that starts no poller (the patch stays installed).
    streams.install_shard_patch()
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="invocations",
        KeySchema=[{"AttributeName": "at", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "at", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb.create_table(
        TableName="source",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


@pytest.fixture
def failure_queue() -> tuple[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="stream-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def consumer(make_function: Callable[..., str], mode: str = "") -> str:
    return make_function("consumer", CONSUMER, region=REGION, Environment={"Variables": {"MODE": mode}})


def map_stream(source: Any, **settings: Any) -> str:
    settings.setdefault("StartingPosition", "TRIM_HORIZON")
    mapping = boto3.client("lambda", region_name=REGION).create_event_source_mapping(
        EventSourceArn=source.latest_stream_arn, FunctionName="consumer", **settings
    )
    return str(mapping["UUID"])


def put(source: Any, *keys: str) -> None:
    """Write the items in one request, so the poller sees them all in the same poll."""
    boto3.client("dynamodb", region_name=REGION).batch_write_item(
        RequestItems={"source": [{"PutRequest": {"Item": {"pk": {"S": key}, "value": {"N": "1"}}}} for key in keys]}
    )


def batches() -> list[list[str]]:
    """Keys of every batch the consumer received, in order."""
    items = boto3.resource("dynamodb", region_name=REGION).Table("invocations").scan()["Items"]
    return [list(item["keys"]) for item in sorted(items, key=lambda item: item["at"])]


def events() -> list[dict[str, Any]]:
    items = boto3.resource("dynamodb", region_name=REGION).Table("invocations").scan()["Items"]
    return [json.loads(item["event"]) for item in sorted(items, key=lambda item: item["at"])]


def failure_records(queue_url: str) -> list[dict[str, Any]]:
    messages = (
        boto3.client("sqs", region_name=REGION)
        .receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(message["Body"]) for message in messages]


def stream_records(source: Any) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    shard = streams.describe_stream(StreamArn=source.latest_stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=source.latest_stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return list(streams.get_records(ShardIterator=iterator)["Records"])


def test_records_arrive_in_batches_in_the_lambda_event_shape(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    consumer(make_function)
    map_stream(source, BatchSize=2)

    put(source, "a", "b", "c")
    source.update_item(
        Key={"pk": "a"},
        UpdateExpression="SET #v = :v",
        ExpressionAttributeNames={"#v": "value"},
        ExpressionAttributeValues={":v": 2},
    )
    source.delete_item(Key={"pk": "b"})

    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a", "b"], ["c", "a"], ["b"]]
    records = [record for event in events() for record in event["Records"]]
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "INSERT", "MODIFY", "REMOVE"]
    modify = records[3]
    assert modify["eventSource"] == "aws:dynamodb"
    assert modify["eventVersion"] == "1.0"
    assert modify["awsRegion"] == REGION
    assert modify["eventSourceARN"] == source.latest_stream_arn
    assert isinstance(modify["dynamodb"]["ApproximateCreationDateTime"], int)
    assert abs(modify["dynamodb"]["ApproximateCreationDateTime"] - time.time()) < 60
    assert modify["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    assert modify["dynamodb"]["OldImage"] == {"pk": {"S": "a"}, "value": {"N": "1"}}
    assert modify["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "value": {"N": "2"}}
    assert modify["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert modify["dynamodb"]["SizeBytes"] > 0
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)
    assert "NewImage" not in records[4]["dynamodb"]


def test_a_batch_gathers_records_for_the_batching_window_unless_it_is_full(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    consumer(make_function)
    map_stream(source, BatchSize=3, MaximumBatchingWindowInSeconds=5)
    put(source, "a")
    time.sleep(0.5)
    put(source, "b")
    assert dispatcher.wait_idle(timeout=20)
    put(source, "c", "d", "e")  # a full batch goes at once, whatever the window
    started = time.monotonic()
    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a", "b"], ["c", "d", "e"]]
    assert time.monotonic() - started < 4


def test_update_that_creates_an_item_writes_one_insert_record(aws: str, source: Any) -> None:
    source.update_item(Key={"pk": "new"}, UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": 1})

    records = stream_records(source)

    assert [(r["eventName"], r["dynamodb"]["NewImage"]) for r in records] == [
        ("INSERT", {"pk": {"S": "new"}, "n": {"N": "1"}})
    ]
    assert records[0]["awsRegion"] == REGION


def test_write_that_changes_nothing_writes_no_record(aws: str, source: Any) -> None:
    put(source, "same")
    put(source, "same")

    assert [r["eventName"] for r in stream_records(source)] == ["INSERT"]


def test_latest_starting_position_skips_records_written_before_the_mapping(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    consumer(make_function)
    put(source, "before")

    map_stream(source, StartingPosition="LATEST")
    put(source, "after")

    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["after"]]


def test_unread_records_keep_the_dispatcher_busy_until_delivered(
    lambdas: LambdaRuntime, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    stream_poller = StreamPoller(dispatcher, poll_interval=0.02)
    consumer(make_function)
    map_stream(source)
    put(source, "a")

    assert dispatcher.busy()

    stream_poller.start()
    try:
        assert dispatcher.wait_idle(timeout=20)
    finally:
        stream_poller.stop()
    assert batches() == [["a"]]


def test_disabled_mapping_resumes_from_its_checkpoint_when_enabled(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    consumer(make_function)
    mapping = map_stream(source)
    lambda_client = boto3.client("lambda", region_name=REGION)
    put(source, "a")
    assert dispatcher.wait_idle(timeout=20)

    lambda_client.update_event_source_mapping(UUID=mapping, Enabled=False)
    put(source, "b")
    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a"]]

    lambda_client.update_event_source_mapping(UUID=mapping, Enabled=True)
    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a"], ["b"]]


def test_reported_item_failures_retry_from_the_lowest_failed_record(
    poller: StreamPoller,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
) -> None:
    consumer(make_function, "report_poison_once")
    map_stream(source, BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])

    boto3.client("dynamodb", region_name=REGION).transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "source", "Item": {"pk": {"S": key}}}} for key in ("a", "b", "poison", "c")
        ]
    )

    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a", "b", "poison", "c"], ["poison", "c"]]


def test_function_error_retries_the_whole_batch(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    consumer(make_function, "raise_once")
    map_stream(source, BatchSize=10)

    put(source, "a", "b")

    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a", "b"], ["a", "b"]]


def test_exhausted_retries_send_the_on_failure_record_and_move_on(
    poller: StreamPoller,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
) -> None:
    queue_url, queue_arn = failure_queue
    consumer(make_function, "raise_on_poison")
    map_stream(
        source, BatchSize=10, MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": queue_arn}}
    )
    put(source, "poison", "x")
    assert dispatcher.wait_idle(timeout=20)

    put(source, "y")
    assert dispatcher.wait_idle(timeout=20)

    assert batches() == [["poison", "x"], ["poison", "x"], ["y"]]
    [failure] = failure_records(queue_url)
    records = [r for r in stream_records(source)]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["requestContext"]["functionArn"].endswith(":function:consumer")
    assert failure["responseContext"]["functionError"] == "Unhandled"
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 2
    assert info["startSequenceNumber"] == records[0]["dynamodb"]["SequenceNumber"]
    assert info["endSequenceNumber"] == records[1]["dynamodb"]["SequenceNumber"]
    assert info["streamArn"] == source.latest_stream_arn
    assert info["shardId"].startswith("shardId-")
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert info["approximateArrivalOfLastRecord"].endswith("Z")


def test_bisection_isolates_the_failing_record(
    poller: StreamPoller,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
) -> None:
    queue_url, queue_arn = failure_queue
    consumer(make_function, "raise_on_poison")
    map_stream(
        source,
        BatchSize=4,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )

    put(source, "a", "b", "poison", "c")

    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["a", "b", "poison", "c"], ["a", "b"], ["poison", "c"], ["poison"], ["c"]]
    [failure] = failure_records(queue_url)
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1


def test_records_older_than_the_maximum_age_are_discarded(
    poller: StreamPoller,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
) -> None:
    queue_url, queue_arn = failure_queue
    consumer(make_function, "raise_on_poison")
    map_stream(
        source,
        MaximumRetryAttempts=-1,
        MaximumRecordAgeInSeconds=1,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )

    put(source, "poison")

    assert dispatcher.wait_idle(timeout=20)
    [failure] = failure_records(queue_url)
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert len(batches()) > 1


def test_infinite_retries_last_until_the_record_leaves_the_stream(
    lambdas: LambdaRuntime,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
) -> None:
    queue_url, queue_arn = failure_queue
    # Retention long enough for several retries, a cold start of the execution environment included.
    stream_poller = StreamPoller(
        dispatcher, poll_interval=0.02, retry_backoff=0.01, max_backoff=0.05, record_retention_seconds=3
    )
    stream_poller.start()
    consumer(make_function, "raise_on_poison")
    map_stream(source, MaximumRetryAttempts=-1, DestinationConfig={"OnFailure": {"Destination": queue_arn}})

    put(source, "poison", "fine")

    try:
        assert dispatcher.wait_idle(timeout=20)
    finally:
        stream_poller.stop()
    assert len(batches()) > 2
    assert failure_records(queue_url)[0]["DDBStreamBatchInfo"]["batchSize"] == 2


def test_mapping_settings_are_stored(
    aws: str, source: Any, make_function: Callable[..., str], failure_queue: tuple[str, str]
) -> None:
    consumer(make_function)
    settings = {
        "BatchSize": 7,
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 120,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": failure_queue[1]}},
        "StartingPosition": "LATEST",
    }
    mapping = map_stream(source, **settings)

    stored = boto3.client("lambda", region_name=REGION).get_event_source_mapping(UUID=mapping)

    assert {key: stored[key] for key in settings} == settings


def test_every_attribute_type_reaches_the_function_as_dynamodb_json(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    """Lambda receives binaries base64-encoded, every other type in its data-type descriptor form:
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_AttributeValue.html"""
    consumer(make_function)
    map_stream(source)
    item = {
        "pk": {"S": "typed"},
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "n": {"N": "12.5"},
        "ns": {"NS": ["1", "2"]},
        "ss": {"SS": ["x", "y"]},
        "null": {"NULL": True},
        "bool": {"BOOL": False},
        "m": {"M": {"inner": {"B": b"\x03"}, "l": {"L": [{"B": b"\x04"}, {"BS": [b"\x05"]}, {"S": "s"}]}}},
    }
    boto3.client("dynamodb", region_name=REGION).put_item(TableName="source", Item=item)

    assert dispatcher.wait_idle(timeout=20)
    [event] = events()
    image = event["Records"][0]["dynamodb"]["NewImage"]
    assert image["b"] == {"B": "AP8="}
    assert sorted(image["bs"]["BS"]) == ["AQ==", "Ag=="]
    assert image["n"] == {"N": "12.5"}
    assert sorted(image["ns"]["NS"]) == ["1", "2"]
    assert sorted(image["ss"]["SS"]) == ["x", "y"]
    assert image["null"] == {"NULL": True}
    assert image["bool"] == {"BOOL": False}
    assert image["m"] == {"M": {"inner": {"B": "Aw=="}, "l": {"L": [{"B": "BA=="}, {"BS": ["BQ=="]}, {"S": "s"}]}}}


def test_an_emulator_fault_is_counted_once_logged_and_the_shard_moves_on(
    poller: StreamPoller,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue_url, queue_arn = failure_queue
    consumer(make_function)
    map_stream(source, BatchSize=1, MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    deliverable = streams.lambda_record

    def faulty(record: dict[str, Any], source_arn: str) -> dict[str, Any]:
        if record["dynamodb"]["Keys"]["pk"]["S"] == "poison":
            raise ValueError("emulator bug on this record")
        return deliverable(record, source_arn)

    monkeypatch.setattr(streams, "lambda_record", faulty)
    internal_errors.reset()
    # Set on the logger itself: another test in this process may have raised the root logger's level.
    caplog.set_level(logging.ERROR, logger=internal_errors.__name__)

    put(source, "poison")
    put(source, "after")

    assert dispatcher.wait_idle(timeout=20)
    assert batches() == [["after"]]
    assert internal_errors.counts() == {"stream-poller": 2}  # the first attempt and its one retry
    assert [r.getMessage() for r in caplog.records].count(
        "local cloud internal error in stream-poller: emulator bug on this record"
    ) == 1
    [failure] = failure_records(queue_url)
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1


def test_on_failure_destination_may_be_an_sns_topic(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    """https://docs.aws.amazon.com/lambda/latest/api/API_OnFailure.html: SNS topics are valid destinations."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="stream-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="topic-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    consumer(make_function, "raise_on_poison")
    map_stream(source, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": topic_arn}})

    put(source, "poison")

    assert dispatcher.wait_idle(timeout=20)
    [failure] = failure_records(queue_url)
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["streamArn"] == source.latest_stream_arn


KEYS_ONLY = """
    import time
    import boto3

    def handler(event, context):
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        boto3.resource("dynamodb").Table("invocations").put_item(Item={"at": time.time_ns(), "keys": keys})
"""


def test_a_batch_never_exceeds_the_synchronous_payload_limit(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    """https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html (BatchSize: one call as
    long as the events stay within the 6 MB synchronous payload limit)."""
    make_function("consumer", KEYS_ONLY, region=REGION)
    keys = [f"big-{i:02d}" for i in range(17)]
    for key in keys:
        source.put_item(Item={"pk": key, "blob": "x" * 390_000})
    map_stream(source, BatchSize=100)  # from TRIM_HORIZON: all 17 records are there at the first poll

    assert dispatcher.wait_idle(timeout=60)
    delivered = batches()
    assert [key for batch in delivered for key in batch] == keys
    assert len(delivered) == 2
    assert all(len(batch) * 390_000 <= 6 * 1024 * 1024 for batch in delivered)


# Sleeps SLEEP seconds per invocation and logs when it started and ended, which keys and values it got; raises on
# a "poison" key when POISON is set (after logging).
SLEEPER = """
    import os
    import time
    import boto3

    def handler(event, context):
        started = time.time_ns()
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        values = [int(r["dynamodb"]["NewImage"]["value"]["N"]) for r in event["Records"]]
        time.sleep(float(os.environ["SLEEP"]))
        boto3.resource("dynamodb").Table("invocations").put_item(
            Item={
                "at": started, "ended": time.time_ns(), "function": context.function_name,
                "keys": keys, "values": values,
            }
        )
        if os.environ.get("POISON") and "poison" in keys:
            raise RuntimeError("poison in batch")
"""


def sleeper(make_function: Callable[..., str], name: str, poison: bool = False) -> str:
    variables = {"SLEEP": "0.5", "POISON": "1" if poison else ""}
    return make_function(name, SLEEPER, region=REGION, Environment={"Variables": variables})


def put_values(source: Any, keys: list[str], value: int) -> None:
    boto3.client("dynamodb", region_name=REGION).batch_write_item(
        RequestItems={
            "source": [{"PutRequest": {"Item": {"pk": {"S": key}, "value": {"N": str(value)}}}} for key in keys]
        }
    )


def invocations(function: str) -> list[dict[str, Any]]:
    """The function's invocations in the order they started: ``at``/``ended`` (ns), ``keys``, ``values``."""
    items = boto3.resource("dynamodb", region_name=REGION).Table("invocations").scan()["Items"]
    return sorted((item for item in items if item["function"] == function), key=lambda item: item["at"])


def overlapping(calls: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (a, b) for i, a in enumerate(calls) for b in calls[i + 1 :] if b["at"] < a["ended"] and a["at"] < b["ended"]
    ]


def values_per_key(calls: list[dict[str, Any]]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for call in calls:
        for key, value in zip(call["keys"], call["values"], strict=True):
            seen.setdefault(key, []).append(int(value))
    return seen


def test_parallelization_factor_runs_batches_of_different_keys_at_once_and_each_key_in_order(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    """ParallelizationFactor: up to N concurrent batches per shard, records of an item still in order
    (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html)."""
    sleeper(make_function, "consumer")
    map_stream(source, BatchSize=2, ParallelizationFactor=4)
    keys = [f"k{i}" for i in range(8)]

    for value in (1, 2, 3):
        put_values(source, keys, value)

    assert dispatcher.wait_idle(timeout=60)
    calls = invocations("consumer")
    pairs = overlapping(calls)
    assert pairs, "no two batches of the shard ran at the same time"
    for first, second in pairs:
        assert not set(first["keys"]) & set(second["keys"]), "one key in two concurrent batches"
    assert values_per_key(calls) == {key: [1, 2, 3] for key in keys}


def test_a_failing_key_retries_and_parks_in_its_own_lane_while_other_keys_go_on(
    poller: StreamPoller,
    dispatcher: Dispatcher,
    source: Any,
    make_function: Callable[..., str],
    failure_queue: tuple[str, str],
) -> None:
    """Checkpoints are kept per concurrent batch: a failing batch holds up only the records of its keys."""
    queue_url, queue_arn = failure_queue
    sleeper(make_function, "consumer", poison=True)
    map_stream(
        source,
        BatchSize=1,
        ParallelizationFactor=4,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )
    others = [f"k{i}" for i in range(8)]

    put_values(source, ["poison", *others], 1)

    assert dispatcher.wait_idle(timeout=60)
    calls = invocations("consumer")
    poison_attempts = [call for call in calls if call["keys"] == ["poison"]]
    assert len(poison_attempts) == 3
    delivered_meanwhile = [
        call for call in calls if call["keys"] != ["poison"] and call["at"] < poison_attempts[-1]["at"]
    ]
    assert delivered_meanwhile, "every other key waited for the failing key's retries"
    assert values_per_key([call for call in calls if call["keys"] != ["poison"]]) == {key: [1] for key in others}
    [failure] = failure_records(queue_url)
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    [poison_record] = [r for r in stream_records(source) if r["dynamodb"]["Keys"]["pk"]["S"] == "poison"]
    assert failure["DDBStreamBatchInfo"]["startSequenceNumber"] == poison_record["dynamodb"]["SequenceNumber"]


def test_factor_one_keeps_one_batch_at_a_time_in_stream_order_next_to_a_parallel_mapping(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    """The factor belongs to the mapping: on one stream, a mapping with factor 1 (the default) still reads the shard
    as one sequence while a mapping with factor 4 runs concurrent batches."""
    sleeper(make_function, "consumer")
    sleeper(make_function, "parallel")
    map_stream(source, BatchSize=2)
    boto3.client("lambda", region_name=REGION).create_event_source_mapping(
        EventSourceArn=source.latest_stream_arn,
        FunctionName="parallel",
        StartingPosition="TRIM_HORIZON",
        BatchSize=2,
        ParallelizationFactor=4,
    )
    keys = [f"k{i}" for i in range(8)]

    put_values(source, keys, 1)

    assert dispatcher.wait_idle(timeout=60)
    sequential = invocations("consumer")
    assert overlapping(sequential) == []
    assert [list(call["keys"]) for call in sequential] == [keys[i : i + 2] for i in range(0, 8, 2)]
    assert overlapping(invocations("parallel"))


def test_a_changed_factor_applies_to_the_records_not_yet_read(
    poller: StreamPoller, dispatcher: Dispatcher, source: Any, make_function: Callable[..., str]
) -> None:
    sleeper(make_function, "consumer")
    mapping = map_stream(source, BatchSize=2)
    lambda_client = boto3.client("lambda", region_name=REGION)
    keys = [f"k{i}" for i in range(8)]
    put_values(source, keys, 1)
    assert dispatcher.wait_idle(timeout=60)

    lambda_client.update_event_source_mapping(UUID=mapping, Enabled=False)
    put_values(source, keys, 2)
    lambda_client.update_event_source_mapping(UUID=mapping, ParallelizationFactor=4, Enabled=True)

    assert dispatcher.wait_idle(timeout=60)
    calls = invocations("consumer")
    before = [call for call in calls if set(call["values"]) == {1}]
    after = [call for call in calls if set(call["values"]) == {2}]
    assert len(before) + len(after) == len(calls)
    assert overlapping(before) == []
    assert overlapping(after)
    assert values_per_key(calls) == {key: [1, 2] for key in keys}
