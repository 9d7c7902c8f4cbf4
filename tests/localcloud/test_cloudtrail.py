from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from event_fixtures import load_event

from iot_dr_local import cloudtrail
from iot_dr_local.cloudtrail import CloudTrailEvents
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.pki import LocalCA
from iot_dr_local.scheduler import Scheduler

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
API_CALL_PATTERN = {
    "source": ["aws.iot"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["iot.amazonaws.com"]},
}
# The IoT write calls all_write_calls makes, each once but CreatePolicy twice.
WRITE_CALLS = [
    "CreateKeysAndCertificate",
    "CreateCertificateFromCsr",
    "RegisterCertificate",
    "RegisterCertificateWithoutCA",
    "CreatePolicy",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
    "DeletePolicyVersion",
    "CreatePolicy",
    "AttachPolicy",
    "DetachPolicy",
    "AttachPrincipalPolicy",
    "DetachPrincipalPolicy",
    "DeletePolicy",
    "CreateThing",
    "AttachThingPrincipal",
    "DetachThingPrincipal",
    "UpdateCertificate",
    "DeleteCertificate",
]


@pytest.fixture
def trail_events(aws: str, dispatcher: Dispatcher) -> Iterator[CloudTrailEvents]:
    events = cloudtrail.install(dispatcher, retry_delays=(0.01, 0.01))
    yield events
    events.uninstall()


def start_trail(region: str = PRIMARY, multi_region: bool = False) -> str:
    name = f"trail-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name=PRIMARY).create_bucket(Bucket=name)
    trails = boto3.client("cloudtrail", region_name=region)
    trails.create_trail(Name=name, S3BucketName=name, IsMultiRegionTrail=multi_region)
    trails.start_logging(Name=name)
    return name


def queue(name: str, region: str = PRIMARY) -> tuple[str, str]:
    """(URL, ARN) of a new queue."""
    url = boto3.client("sqs", region_name=region).create_queue(QueueName=name)["QueueUrl"]
    return str(url), f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"


def event_rule(targets: list[dict[str, Any]], pattern: dict[str, Any] | None = None, region: str = PRIMARY) -> str:
    events = boto3.client("events", region_name=region)
    name = f"rule-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=name, EventPattern=json.dumps(pattern or API_CALL_PATTERN))
    events.put_targets(Rule=name, Targets=targets)
    return name


def received(queue_url: str, dispatcher: Dispatcher, region: str = PRIMARY) -> list[dict[str, Any]]:
    """Every message on the queue: body and string attributes."""
    assert dispatcher.wait_idle(timeout=30)
    sqs = boto3.client("sqs", region_name=region)
    found: list[dict[str, Any]] = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in messages:
            attributes = {key: value["StringValue"] for key, value in message.get("MessageAttributes", {}).items()}
            found.append({"body": json.loads(message["Body"]), "attributes": attributes})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-csr")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def all_write_calls(iot: Any, ca: LocalCA) -> dict[str, Any]:
    """Make the WRITE_CALLS and some read-only calls; returns what the assertions need."""
    keys = iot.create_keys_and_certificate(setAsActive=True)
    arn = keys["certificateArn"]
    iot.create_certificate_from_csr(certificateSigningRequest=csr_pem(), setAsActive=False)
    iot.register_certificate(certificatePem=ca.issue_device("dev-2").cert_pem, status="ACTIVE")
    unused = iot.register_certificate_without_ca(certificatePem=ca.issue_device("dev-3").cert_pem, status="INACTIVE")
    iot.create_policy(policyName="devices", policyDocument=POLICY)
    iot.create_policy_version(policyName="devices", policyDocument=POLICY, setAsDefault=False)
    iot.set_default_policy_version(policyName="devices", policyVersionId="2")
    iot.delete_policy_version(policyName="devices", policyVersionId="1")
    iot.create_policy(policyName="legacy", policyDocument=POLICY)
    iot.attach_policy(policyName="devices", target=arn)
    iot.detach_policy(policyName="devices", target=arn)
    iot.attach_principal_policy(policyName="legacy", principal=arn)
    iot.detach_principal_policy(policyName="legacy", principal=arn)
    iot.delete_policy(policyName="legacy")
    iot.create_thing(thingName="dev-1")
    iot.attach_thing_principal(thingName="dev-1", principal=arn)
    iot.detach_thing_principal(thingName="dev-1", principal=arn)
    iot.update_certificate(certificateId=unused["certificateId"], newStatus="REVOKED")
    iot.delete_certificate(certificateId=unused["certificateId"])
    iot.list_policies()
    iot.get_policy(policyName="devices")
    iot.describe_thing(thingName="dev-1")
    return {"keys": keys}


def test_each_iot_write_call_reaches_the_rule_target_as_a_documented_api_call_event(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    start_trail()
    url, arn = queue("capture")
    event_rule([{"Id": "capture", "Arn": arn}])
    iot = boto3.client("iot", region_name=PRIMARY)

    made = all_write_calls(iot, LocalCA(tmp_path))

    events = [message["body"] for message in received(url, dispatcher)]
    names = sorted(event["detail"]["eventName"] for event in events)
    assert names == sorted(WRITE_CALLS)
    documented = load_event("cloudtrail/attach_policy.json")
    for event in events:
        assert set(event) == set(documented)
        assert set(event["detail"]) == set(documented["detail"])
        assert (event["source"], event["region"], event["account"]) == ("aws.iot", PRIMARY, ACCOUNT_ID)
        assert event["detail-type"] == documented["detail-type"]
        detail = event["detail"]
        assert (detail["eventSource"], detail["awsRegion"], detail["recipientAccountId"]) == (
            "iot.amazonaws.com",
            PRIMARY,
            ACCOUNT_ID,
        )
        assert (detail["eventType"], detail["readOnly"], detail["managementEvent"]) == ("AwsApiCall", False, True)
        assert event["time"] == detail["eventTime"]
        assert "PRIVATE KEY" not in json.dumps(event)
    by_name = {event["detail"]["eventName"]: event["detail"] for event in events}
    certificate_arn = made["keys"]["certificateArn"]
    assert by_name["AttachPolicy"]["requestParameters"] == {"policyName": "devices", "target": certificate_arn}
    assert by_name["AttachThingPrincipal"]["requestParameters"] == {"thingName": "dev-1", "principal": certificate_arn}
    assert by_name["AttachPrincipalPolicy"]["requestParameters"] == {
        "policyName": "legacy",
        "principal": certificate_arn,
    }
    assert by_name["SetDefaultPolicyVersion"]["requestParameters"] == {"policyName": "devices", "policyVersionId": "2"}
    assert by_name["AttachPolicy"]["responseElements"] is None
    created = by_name["CreateKeysAndCertificate"]
    assert set(created) == set(load_event("cloudtrail/create_keys_and_certificate.json")["detail"])
    assert created["requestParameters"] == {"setAsActive": True}
    assert created["responseElements"] == {
        "certificateArn": certificate_arn,
        "certificateId": made["keys"]["certificateId"],
    }
    assert (
        len({event["id"] for event in events})
        == len({event["detail"]["eventID"] for event in events})
        == len(WRITE_CALLS)
    )


def test_write_calls_beyond_the_captured_ones_are_recorded_and_read_only_calls_are_not(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher
) -> None:
    start_trail()
    url, arn = queue("all-calls")
    event_rule([{"Id": "all", "Arn": arn}])
    iot = boto3.client("iot", region_name=PRIMARY)

    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing(thingName="dev-1", thingTypeName="sensor")
    iot.update_thing(thingName="dev-1", attributePayload={"attributes": {"floor": "2"}})
    iot.create_thing_group(thingGroupName="fleet")
    iot.add_thing_to_thing_group(thingGroupName="fleet", thingName="dev-1")
    iot.describe_thing(thingName="dev-1")
    iot.list_things()
    iot.list_thing_groups()
    iot.get_registration_code()
    iot.describe_endpoint(endpointType="iot:Data-ATS")

    events = [message["body"] for message in received(url, dispatcher)]
    names = sorted(event["detail"]["eventName"] for event in events)
    assert names == ["AddThingToThingGroup", "CreateThing", "CreateThingGroup", "CreateThingType", "UpdateThing"]
    for event in events:
        assert (event["detail-type"], event["detail"]["readOnly"]) == (cloudtrail.DETAIL_TYPE, False)
    by_name = {event["detail"]["eventName"]: event["detail"] for event in events}
    assert by_name["CreateThing"]["requestParameters"] == {"thingName": "dev-1", "thingTypeName": "sensor"}


@pytest.mark.parametrize(
    ("action", "read_only"),
    [
        ("DescribeThing", True),
        ("ListThings", True),
        ("GetPolicy", True),
        ("SearchIndex", True),
        ("TestAuthorization", True),
        ("ValidateSecurityProfileBehaviors", True),
        ("CreateThing", False),
        ("UpdateCertificate", False),
        ("DeleteThing", False),
        ("AttachPolicy", False),
        ("RegisterCertificateWithoutCA", False),
        ("CancelJob", False),
    ],
)
def test_only_actions_named_as_reads_count_as_read_only(action: str, read_only: bool) -> None:
    assert cloudtrail.read_only(action) is read_only


def test_no_events_without_a_logging_trail_covering_the_region(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher
) -> None:
    url, arn = queue("capture")
    event_rule([{"Id": "capture", "Arn": arn}])
    iot = boto3.client("iot", region_name=PRIMARY)

    iot.create_policy(policyName="no-trail", policyDocument=POLICY)
    start_trail(region=SECONDARY)
    iot.create_policy(policyName="other-region-trail", policyDocument=POLICY)
    stopped = start_trail(region=PRIMARY)
    boto3.client("cloudtrail", region_name=PRIMARY).stop_logging(Name=stopped)
    iot.create_policy(policyName="stopped-trail", policyDocument=POLICY)
    selective = start_trail(region=PRIMARY)
    boto3.client("cloudtrail", region_name=PRIMARY).put_event_selectors(
        TrailName=selective, EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]
    )
    iot.create_policy(policyName="read-only-selector", policyDocument=POLICY)
    with pytest.raises(ClientError):
        iot.attach_policy(policyName="missing", target="arn:aws:iot:us-east-1:123456789012:cert/none")

    assert received(url, dispatcher) == []


def test_a_multi_region_trail_covers_calls_in_every_region(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher
) -> None:
    start_trail(region=SECONDARY, multi_region=True)
    url, arn = queue("capture")
    event_rule([{"Id": "capture", "Arn": arn}])

    boto3.client("iot", region_name=PRIMARY).create_policy(policyName="p", policyDocument=POLICY)

    (message,) = received(url, dispatcher)
    assert (message["body"]["region"], message["body"]["detail"]["eventName"]) == (PRIMARY, "CreatePolicy")


def test_events_are_delivered_after_the_api_call_returned(aws: str) -> None:
    workers = Dispatcher(workers=1)
    events = cloudtrail.install(workers)
    release = threading.Event()
    try:
        start_trail()
        url, arn = queue("capture")
        event_rule([{"Id": "capture", "Arn": arn}])
        workers.submit(release.wait, 30)

        boto3.client("iot", region_name=PRIMARY).create_policy(policyName="p", policyDocument=POLICY)

        assert events.busy()
        release.set()
        assert len(received(url, workers)) == 1
        assert not events.busy()
    finally:
        release.set()
        events.uninstall()
        workers.shutdown()


FORWARD_EVENT = """
    import json
    import os
    import boto3

    def handler(event, context):
        boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
"""


def test_lambda_targets_are_invoked_asynchronously_with_the_event(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher, make_function: Callable[..., str]
) -> None:
    start_trail()
    url, _ = queue("seen")
    function_arn = make_function("capture", FORWARD_EVENT, Environment={"Variables": {"QUEUE_URL": url}})
    event_rule([{"Id": "capture", "Arn": function_arn}])

    boto3.client("iot", region_name=PRIMARY).create_policy(policyName="p", policyDocument=POLICY)

    (message,) = received(url, dispatcher)
    assert message["body"]["detail"]["requestParameters"] == {"policyName": "p", "policyDocument": POLICY}


def test_a_target_that_keeps_failing_goes_to_its_dead_letter_queue(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher, make_function: Callable[..., str]
) -> None:
    start_trail()
    dlq_url, dlq_arn = queue("dead-letters")
    missing_function = f"arn:aws:lambda:{PRIMARY}:{ACCOUNT_ID}:function:missing"
    missing_queue = f"arn:aws:sqs:{PRIMARY}:{ACCOUNT_ID}:missing"
    rule = event_rule(
        [
            {"Id": "function", "Arn": missing_function, "DeadLetterConfig": {"Arn": dlq_arn}},
            {"Id": "queue", "Arn": missing_queue, "DeadLetterConfig": {"Arn": dlq_arn}},
            {"Id": "no-dlq", "Arn": missing_queue},
        ]
    )

    boto3.client("iot", region_name=PRIMARY).create_policy(policyName="p", policyDocument=POLICY)

    messages = received(dlq_url, dispatcher)
    assert sorted(message["attributes"]["TARGET_ARN"] for message in messages) == [missing_function, missing_queue]
    rule_arn = f"arn:aws:events:{PRIMARY}:{ACCOUNT_ID}:rule/{rule}"
    for message in messages:
        assert message["attributes"]["RULE_ARN"] == rule_arn
        assert message["attributes"]["ERROR_CODE"]
        assert message["body"]["detail"]["eventName"] == "CreatePolicy"


def test_put_events_delivers_to_enabled_rules_with_lambda_targets(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher, make_function: Callable[..., str]
) -> None:
    url, arn = queue("seen")
    function_arn = make_function("capture", FORWARD_EVENT, Environment={"Variables": {"QUEUE_URL": url}})
    pattern = {"source": ["local.test"]}
    event_rule([{"Id": "function", "Arn": function_arn}], pattern)
    disabled = event_rule([{"Id": "queue", "Arn": arn}], pattern)
    events = boto3.client("events", region_name=PRIMARY)
    events.disable_rule(Name=disabled)

    events.put_events(Entries=[{"Source": "local.test", "DetailType": "Test", "Detail": json.dumps({"n": 1})}])

    (message,) = received(url, dispatcher)
    event = message["body"]
    assert (event["source"], event["detail-type"], event["detail"], event["account"]) == (
        "local.test",
        "Test",
        {"n": 1},
        ACCOUNT_ID,
    )
    assert isinstance(event["time"], str) and event["time"].endswith("Z")


def test_schedule_only_rules_receive_their_schedule_but_no_other_events(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher
) -> None:
    start_trail()
    url, arn = queue("scheduled")
    events = boto3.client("events", region_name=PRIMARY)
    events.put_rule(Name="every-five-minutes", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="every-five-minutes", Targets=[{"Id": "queue", "Arn": arn}])

    boto3.client("iot", region_name=PRIMARY).create_policy(policyName="p", policyDocument=POLICY)
    events.put_events(Entries=[{"Source": "local.test", "DetailType": "Test", "Detail": "{}"}])
    Scheduler().trigger(PRIMARY, "every-five-minutes")

    assert [message["body"]["detail-type"] for message in received(url, dispatcher)] == ["Scheduled Event"]


def test_constant_input_replaces_the_event_and_unsupported_transformations_are_dead_lettered(
    trail_events: CloudTrailEvents, dispatcher: Dispatcher
) -> None:
    url, arn = queue("seen")
    dlq_url, dlq_arn = queue("dead-letters")
    transformer = {"InputPathsMap": {"s": "$.source"}, "InputTemplate": '{"source": <s>}'}
    event_rule(
        [
            {"Id": "constant", "Arn": arn, "Input": json.dumps({"fixed": True})},
            {"Id": "transformed", "Arn": arn, "InputTransformer": transformer, "DeadLetterConfig": {"Arn": dlq_arn}},
        ],
        {"source": ["local.test"]},
    )

    boto3.client("events", region_name=PRIMARY).put_events(
        Entries=[{"Source": "local.test", "DetailType": "Test", "Detail": "{}"}]
    )

    assert [message["body"] for message in received(url, dispatcher)] == [{"fixed": True}]
    (dead,) = received(dlq_url, dispatcher)
    assert dead["body"]["source"] == "local.test"
    assert dead["attributes"]["ERROR_CODE"] == "DeliveryError"
