from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from iot_dr_local import cloudtrail
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.lambda_runtime import LambdaRuntime
from iot_dr_local.scheduler import ScheduleError, Scheduler, rate_seconds

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"

# Forwards the event it receives to the "fired" queue of its own region.
FORWARD = """
    import json
    import os
    import boto3

    def handler(event, context):
        sqs = boto3.client("sqs")
        sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="fired")["QueueUrl"], MessageBody=json.dumps(event))
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scheduler(lambdas: LambdaRuntime, dispatcher: Dispatcher, clock: FakeClock) -> Iterator[Scheduler]:
    """A scheduler on a fake clock, with EventBridge delivering to Lambda and SQS targets."""
    delivery = cloudtrail.install(dispatcher, retry_delays=(0.01,))
    schedules = Scheduler(poll_interval=0.01, clock=clock)
    schedules.start()
    yield schedules
    schedules.stop()
    delivery.uninstall()


def fired_queue(region: str) -> str:
    return str(boto3.client("sqs", region_name=region).create_queue(QueueName="fired")["QueueUrl"])


def received(region: str, queue_url: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs", region_name=region).receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def receive(region: str, queue_url: str, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` events: the scheduler thread fires on its own time, outside the dispatcher."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(events) < count and time.monotonic() < deadline:
        events += received(region, queue_url)
        time.sleep(0.02)
    return events


def schedule_function(
    make_function: Callable[..., str], region: str = PRIMARY, expression: str = "rate(5 minutes)"
) -> str:
    function_arn = make_function("reconcile", FORWARD, region=region)
    events = boto3.client("events", region_name=region)
    rule_arn = events.put_rule(Name="reconcile", ScheduleExpression=expression)["RuleArn"]
    events.put_targets(Rule="reconcile", Targets=[{"Id": "fn", "Arn": function_arn}])
    return str(rule_arn)


def test_trigger_invokes_the_lambda_target_with_the_scheduled_event(
    scheduler: Scheduler, dispatcher: Dispatcher, clock: FakeClock, make_function: Callable[..., str]
) -> None:
    queue = fired_queue(PRIMARY)
    rule_arn = schedule_function(make_function)

    scheduler.trigger(PRIMARY, "reconcile")

    assert dispatcher.wait_idle(timeout=20)
    [event] = received(PRIMARY, queue)
    assert uuid.UUID(event.pop("id"))
    assert event == {
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.datetime.fromtimestamp(clock.now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": PRIMARY,
        "resources": [rule_arn],
        "detail": {},
    }


def test_rule_fires_each_time_its_rate_elapses(
    scheduler: Scheduler, dispatcher: Dispatcher, clock: FakeClock, make_function: Callable[..., str]
) -> None:
    queue = fired_queue(SECONDARY)
    schedule_function(make_function, region=SECONDARY, expression="rate(1 hour)")
    assert dispatcher.wait_idle(timeout=20)

    clock.now += 3599
    assert dispatcher.wait_idle(timeout=20)
    assert received(SECONDARY, queue) == []

    clock.now += 2
    first = receive(SECONDARY, queue, 1)
    assert dispatcher.wait_idle(timeout=20)

    clock.now += 3600
    second = receive(SECONDARY, queue, 1)
    assert dispatcher.wait_idle(timeout=20)

    assert [event["region"] for event in first] == [SECONDARY]
    assert [event["region"] for event in second] == [SECONDARY]
    assert received(SECONDARY, queue) == []


def test_disabled_rule_does_not_fire(
    scheduler: Scheduler, dispatcher: Dispatcher, clock: FakeClock, make_function: Callable[..., str]
) -> None:
    queue = fired_queue(PRIMARY)
    schedule_function(make_function, expression="rate(1 minute)")
    boto3.client("events", region_name=PRIMARY).disable_rule(Name="reconcile")

    clock.now += 600
    assert dispatcher.wait_idle(timeout=20)

    assert received(PRIMARY, queue) == []


def test_sqs_target_receives_the_scheduled_event(scheduler: Scheduler, dispatcher: Dispatcher) -> None:
    queue = fired_queue(PRIMARY)
    queue_arn = boto3.client("sqs", region_name=PRIMARY).get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=PRIMARY)
    events.put_rule(Name="tick", ScheduleExpression="rate(2 days)")
    events.put_targets(Rule="tick", Targets=[{"Id": "queue", "Arn": queue_arn}])

    scheduler.trigger(PRIMARY, "tick")

    assert dispatcher.wait_idle(timeout=20)
    assert [event["detail-type"] for event in received(PRIMARY, queue)] == ["Scheduled Event"]


def test_cron_schedule_is_rejected_with_a_clear_message(scheduler: Scheduler) -> None:
    with pytest.raises(ClientError) as raised:
        boto3.client("events", region_name=PRIMARY).put_rule(Name="nightly", ScheduleExpression="cron(0 2 * * ? *)")

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "rate(" in raised.value.response["Error"]["Message"]


def test_trigger_of_a_rule_without_schedule_is_refused(scheduler: Scheduler) -> None:
    boto3.client("events", region_name=PRIMARY).put_rule(Name="pattern", EventPattern=json.dumps({"source": ["x"]}))

    with pytest.raises(ScheduleError):
        scheduler.trigger(PRIMARY, "pattern")


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(3 days)", 259200)],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "cron(0 * * * ? *)"])
def test_invalid_or_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        rate_seconds(expression)
