"""Bad events at every Lambda handler: a clear answer or a named domain error, never an unhandled traceback.

A handler invoked by Step Functions raises ``MalformedEvent``, which the workflow catches and parks with its reason;
one invoked by a topic rule, EventBridge or CloudFormation raises ``MalformedEvent`` with the reason, which the
service's retries and error queue keep; the health checker answers 400/403 (tests/failover/test_health_check.py
covers it against a broker). Any other exception type (KeyError, AttributeError, TypeError, UnicodeError) on
malformed input fails this table. New handlers add a row to HANDLERS.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from iot_dr.core.errors import MalformedEvent
from iot_dr_local.lambda_worker import LambdaContext

REPO = Path(__file__).resolve().parents[1]
LAMBDA = REPO / "source/lambda"
FUNCTION_ARN = "arn:aws:lambda:us-west-2:123456789012:function:IoTDRSecondary-fn"
HANDLERS = {
    "thing-crud": "iot-dr-thing-crud/thing_crud.py",
    "thing-type-crud": "iot-dr-thing-type-crud/thing_type_crud.py",
    "thing-group-crud": "iot-dr-thing-group-crud/thing_group_crud.py",
    "shadow-syncer": "iot-dr-shadow-syncer/shadow_syncer.py",
    "certificate-policy-sync": "iot-dr-certificate-policy-sync/certificate_policy_sync.py",
    "park-event": "iot-dr-park-event/park_event.py",
    "dynamo-trigger": "iot-dr-dynamo-trigger/dynamo_trigger.py",
    "capture-changes": "iot-dr-capture-changes/capture_changes.py",
    "jitr": "iot-dr-jitr/jitr.py",
    "launch-solution": "iot-dr-launch-solution/launch_solution_resource.py",
    "r53-checker-credentials": "iot-dr-r53-checker-credentials/checker_credentials_resource.py",
}
OVERSIZED = {"eventType": "THING", "event": {"thingName": "x" * 300_000}}
NOT_UTF8 = {"eventType": "THING", "event": {"thingName": b"\xff\xfe".decode("latin-1")}}
BAD_EVENTS = {
    "empty": {},
    "not-an-object": [],
    "null": None,
    "text": "not json",
    "wrong-shapes": {"eventType": 7, "event": "x", "Records": "x", "detail": [], "certificateId": 5},
    "oversized": OVERSIZED,
    "non-utf8-text": NOT_UTF8,
}


@pytest.fixture(scope="module")
def environment() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bad-events",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "STATE_TABLE": "IoTDRSecondary-state",
        "PRIMARY_REGION": "us-east-1",
        "STATE_MACHINE_ARN": "arn:aws:states:us-west-2:123456789012:stateMachine:IoTDRSecondary",
        "DEAD_LETTER_TABLE": "IoTDRSecondary-dead-letters",
        "REPLICATION_TABLE": "IoTDRGlobalTable",
        "ITEM_TTL_SECONDS": "86400",
        "LEDGER_RETENTION_DAYS": "30",
        "SECONDARY_REGION": "us-west-2",
        "FALLBACK_QUEUE_URL": f"http://{host}:{port}/123456789012/IoTDRSecondary-park-fallback",
        "CODEBUILD_PROJECT": "IoTDRLaunchSolution",
        "LOG_LEVEL": "CRITICAL",
    }
    dynamodb = boto3.client(
        "dynamodb",
        region_name="us-west-2",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="bad-events",
        aws_secret_access_key="testing",
    )
    dynamodb.create_table(
        TableName=env["DEAD_LETTER_TABLE"],
        AttributeDefinitions=[{"AttributeName": "deadLetterId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "deadLetterId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield env
    server.stop()


def load(relative: str) -> Callable[[Any, Any], Any]:
    path = LAMBDA / relative
    spec = importlib.util.spec_from_file_location(f"bad_events_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler  # type: ignore[no-any-return]


@pytest.mark.parametrize("event_name", sorted(BAD_EVENTS))
@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_a_malformed_event_gets_an_answer_or_a_named_error(
    function: str, event_name: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    handler = load(HANDLERS[function])
    # The context the Python runtime passes, with every attribute (the local cloud's workers build the same one).
    name = FUNCTION_ARN.rsplit(":", 1)[-1]
    function = {"name": name, "version": "$LATEST", "arn": FUNCTION_ARN, "memory_size": 128}
    context = LambdaContext(function, "request-1", 60_000)

    try:
        answer = handler(BAD_EVENTS[event_name], context)
    except MalformedEvent as err:
        assert str(err), "the reason is what the operator sees"
    else:
        assert answer is None or isinstance(answer, dict)
