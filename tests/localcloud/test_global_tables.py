from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from iot_dr_local import internal_errors
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.global_tables import GlobalTableReplicator

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
NEW_AND_OLD = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.fixture
def replicator(aws: str, dispatcher: Dispatcher) -> Iterator[GlobalTableReplicator]:
    global_tables = GlobalTableReplicator(dispatcher)
    global_tables.install()
    yield global_tables
    global_tables.uninstall()


def create_table(region: str, stream: dict[str, Any] | None = None, **options: Any) -> Any:
    return boto3.resource("dynamodb", region_name=region).create_table(
        TableName="replicated",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=stream or NEW_AND_OLD,
        **options,
    )


def add_replica(region: str = SECONDARY) -> dict[str, Any]:
    return dict(
        boto3.client("dynamodb", region_name=PRIMARY).update_table(
            TableName="replicated", ReplicaUpdates=[{"Create": {"RegionName": region}}]
        )["TableDescription"]
    )


def table(region: str) -> Any:
    return boto3.resource("dynamodb", region_name=region).Table("replicated")


def items(region: str) -> list[dict[str, Any]]:
    return sorted(table(region).scan()["Items"], key=lambda item: (item["pk"], item["sk"]))


def stream_records(region: str) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", region_name=region)
    arn = table(region).latest_stream_arn
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
    return list(streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"])


def test_replica_is_created_with_the_schema_settings_and_items_of_the_table(replicator: GlobalTableReplicator) -> None:
    source = create_table(PRIMARY, SSESpecification={"Enabled": True, "SSEType": "KMS"})
    boto3.client("dynamodb", region_name=PRIMARY).update_time_to_live(
        TableName="replicated", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    source.put_item(Item={"pk": "before", "sk": 1, "value": "x"})

    response = add_replica()

    replica = boto3.client("dynamodb", region_name=SECONDARY).describe_table(TableName="replicated")["Table"]
    original = boto3.client("dynamodb", region_name=PRIMARY).describe_table(TableName="replicated")["Table"]
    assert response["Replicas"] == [{"RegionName": SECONDARY, "ReplicaStatus": "ACTIVE"}]
    assert original["Replicas"] == [{"RegionName": SECONDARY, "ReplicaStatus": "ACTIVE"}]
    assert replica["Replicas"] == [{"RegionName": PRIMARY, "ReplicaStatus": "ACTIVE"}]
    assert replica["TableArn"].startswith(f"arn:aws:dynamodb:{SECONDARY}:{ACCOUNT_ID}:table/")
    assert replica["KeySchema"] == original["KeySchema"]
    assert replica["AttributeDefinitions"] == original["AttributeDefinitions"]
    assert replica["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}
    assert replica["StreamSpecification"] == NEW_AND_OLD
    assert replica["SSEDescription"]["Status"] == "ENABLED"
    assert f":{SECONDARY}:" in replica["SSEDescription"]["KMSMasterKeyArn"]
    ttl = boto3.client("dynamodb", region_name=SECONDARY).describe_time_to_live(TableName="replicated")
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert items(SECONDARY) == [{"pk": "before", "sk": 1, "value": "x"}]
    assert stream_records(SECONDARY) == []


def test_every_kind_of_write_reaches_the_replica_with_stream_records_and_no_echo(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    source = create_table(PRIMARY)
    add_replica()
    client = boto3.client("dynamodb", region_name=PRIMARY)

    source.put_item(Item={"pk": "a", "sk": 1, "v": 1})
    source.update_item(Key={"pk": "a", "sk": 1}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": 2})
    client.batch_write_item(
        RequestItems={"replicated": [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": "1"}}}}]}
    )
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": "replicated", "Item": {"pk": {"S": "c"}, "sk": {"N": "1"}}}}]
    )
    source.delete_item(Key={"pk": "b", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert items(SECONDARY) == items(PRIMARY) == [{"pk": "a", "sk": 1, "v": 2}, {"pk": "c", "sk": 1}]
    replica_events = [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in stream_records(SECONDARY)]
    assert replica_events == [("INSERT", "a"), ("MODIFY", "a"), ("INSERT", "b"), ("INSERT", "c"), ("REMOVE", "b")]
    assert all(r["awsRegion"] == SECONDARY for r in stream_records(SECONDARY))
    assert len(stream_records(PRIMARY)) == 5


def test_writes_in_the_replica_reach_the_original_table(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    create_table(PRIMARY)
    add_replica()

    table(SECONDARY).put_item(Item={"pk": "from-secondary", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert items(PRIMARY) == [{"pk": "from-secondary", "sk": 1}]


def test_updates_of_one_item_arrive_in_order(replicator: GlobalTableReplicator, dispatcher: Dispatcher) -> None:
    source = create_table(PRIMARY)
    add_replica()

    for version in range(1, 21):
        source.put_item(Item={"pk": "a", "sk": 1, "version": version})

    assert dispatcher.wait_idle(timeout=20)
    versions = [int(r["dynamodb"]["NewImage"]["version"]["N"]) for r in stream_records(SECONDARY)]
    assert versions == list(range(1, 21))


def test_paused_region_holds_replication_and_resuming_releases_the_backlog(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    source = create_table(PRIMARY)
    add_replica()
    replicator.set_paused(SECONDARY, True)

    source.put_item(Item={"pk": "a", "sk": 1, "v": 1})
    source.put_item(Item={"pk": "a", "sk": 1, "v": 2})
    table(SECONDARY).put_item(Item={"pk": "b", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert items(SECONDARY) == [{"pk": "b", "sk": 1}]
    assert items(PRIMARY) == [{"pk": "a", "sk": 1, "v": 2}]

    replicator.set_paused(SECONDARY, False)

    assert dispatcher.wait_idle(timeout=20)
    assert items(SECONDARY) == items(PRIMARY) == [{"pk": "a", "sk": 1, "v": 2}, {"pk": "b", "sk": 1}]
    assert [r["dynamodb"]["NewImage"]["v"]["N"] for r in stream_records(SECONDARY) if r["eventName"] != "INSERT"] == [
        "2"
    ]


def test_the_newest_of_two_conflicting_writes_wins_in_every_region(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    create_table(PRIMARY)
    add_replica()
    replicator.set_paused(PRIMARY, True)

    table(PRIMARY).put_item(Item={"pk": "a", "sk": 1, "writer": "primary"})
    table(SECONDARY).put_item(Item={"pk": "a", "sk": 1, "writer": "secondary"})
    replicator.set_paused(PRIMARY, False)

    assert dispatcher.wait_idle(timeout=20)
    assert items(PRIMARY) == items(SECONDARY) == [{"pk": "a", "sk": 1, "writer": "secondary"}]


def test_deleting_a_replica_removes_its_table_and_stops_replication(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    source = create_table(PRIMARY)
    add_replica()

    boto3.client("dynamodb", region_name=PRIMARY).update_table(
        TableName="replicated", ReplicaUpdates=[{"Delete": {"RegionName": SECONDARY}}]
    )
    source.put_item(Item={"pk": "a", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert "replicated" not in boto3.client("dynamodb", region_name=SECONDARY).list_tables()["TableNames"]
    assert (
        "Replicas" not in boto3.client("dynamodb", region_name=PRIMARY).describe_table(TableName="replicated")["Table"]
    )


def test_replica_needs_a_stream_with_new_and_old_images(replicator: GlobalTableReplicator) -> None:
    create_table(PRIMARY, stream={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})

    with pytest.raises(ClientError) as raised:
        add_replica()

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "replicated" not in boto3.client("dynamodb", region_name=SECONDARY).list_tables()["TableNames"]


def test_registered_group_of_existing_tables_replicates(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    create_table(PRIMARY)
    create_table(SECONDARY)
    replicator.register_group(ACCOUNT_ID, "replicated", [PRIMARY, SECONDARY])

    table(PRIMARY).put_item(Item={"pk": "a", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert items(SECONDARY) == [{"pk": "a", "sk": 1}]


def test_reset_forgets_every_global_table(replicator: GlobalTableReplicator, dispatcher: Dispatcher) -> None:
    create_table(PRIMARY)
    add_replica()

    replicator.reset()
    table(PRIMARY).put_item(Item={"pk": "a", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert items(SECONDARY) == []
    assert (
        "Replicas" not in boto3.client("dynamodb", region_name=PRIMARY).describe_table(TableName="replicated")["Table"]
    )


def test_items_of_every_attribute_type_replicate(replicator: GlobalTableReplicator, dispatcher: Dispatcher) -> None:
    """Global tables copy items whole: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html"""
    create_table(PRIMARY)
    add_replica()
    item = {
        "pk": {"S": "typed"},
        "sk": {"N": "1"},
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01"]},
        "ns": {"NS": ["2"]},
        "ss": {"SS": ["s"]},
        "null": {"NULL": True},
        "bool": {"BOOL": True},
        "m": {"M": {"l": {"L": [{"B": b"\x02"}]}}},
    }
    boto3.client("dynamodb", region_name=PRIMARY).put_item(TableName="replicated", Item=item)

    assert dispatcher.wait_idle(timeout=20)
    replica = boto3.client("dynamodb", region_name=SECONDARY).scan(TableName="replicated")["Items"]
    assert replica == [item]


def test_an_emulator_fault_on_one_write_does_not_stall_the_queue_behind_it(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = create_table(PRIMARY)
    add_replica()
    apply = GlobalTableReplicator._apply

    def faulty(self: GlobalTableReplicator, write: Any) -> None:
        if write.key["pk"] == {"S": "poison"}:
            raise RuntimeError("emulator bug")
        apply(self, write)

    monkeypatch.setattr(GlobalTableReplicator, "_apply", faulty)
    internal_errors.reset()

    source.put_item(Item={"pk": "poison", "sk": 1})
    source.put_item(Item={"pk": "after", "sk": 1})

    assert dispatcher.wait_idle(timeout=20)
    assert [item["pk"] for item in items(SECONDARY)] == ["after"]
    assert internal_errors.counts() == {"global-tables": 1}
