"""The AWS IoT rules engine of the local cloud: topic rules stored in moto, evaluated and run for real.

Every message published in a region (iot-data Publish, registry events, shadow messages) is matched
against that region's enabled topic rules. Matching rules run their actions from the dispatcher, as
AWS does after the publisher has moved on. A failing action triggers the rule's error action with the
documented error message. Only the action types the solution deploys are supported; any other action
counts as failed, so a rule that cannot run locally is visible instead of silently skipped.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from moto.core.exceptions import JsonRESTError, ServiceException
from moto.iot.exceptions import IoTClientError
from moto.iot.models import IoTBackend, iot_backends
from moto.iotdata.models import IoTDataPlaneBackend

from iot_dr.core import aws
from iot_dr_local import internal_errors
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.patching import Patches
from iot_dr_local.rules_sql import SQL_VERSION, MessageContext, RuleSqlError, RuleStatement, parse

LOG = logging.getLogger(__name__)


class ActionError(Exception):
    """A rule action could not hand its message over."""


# What a call into AWS (through botocore) or straight into a moto backend raises when the service says no.
SERVICE_ERRORS = (ClientError, BotoCoreError, ServiceException, JsonRESTError)


def describe_error(err: BaseException) -> tuple[str, str]:
    """The AWS error code and a readable message naming it, for errors from botocore or from moto."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "")), str(err)
    if isinstance(err, JsonRESTError):
        return err.error_type, f"{err.error_type}: {err.message}"
    if isinstance(err, ServiceException):
        return err.code, str(err)
    return type(err).__name__, str(err)


@dataclass
class RuleStats:
    matched: int = 0
    actions_ok: int = 0
    actions_failed: int = 0
    error_actions_ok: int = 0
    error_actions_failed: int = 0


@dataclass(frozen=True)
class _Rule:
    name: str
    sql: str
    actions: list[dict[str, Any]]
    error_action: dict[str, Any]


@dataclass(frozen=True)
class _Message:
    account_id: str
    region: str
    topic: str
    payload: bytes
    client_id: str | None
    timestamp_ms: int


def action_name(action_type: str) -> str:
    """The ``failedAction`` name AWS reports for an action key (``sqs`` -> ``SqsAction``)."""
    return f"{action_type[:1].upper()}{action_type[1:]}Action"


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        LOG.warning("non-JSON payload: field references are Undefined and SELECT * yields nothing")
        return None


def _dynamodb_item(message: Any) -> dict[str, Any]:
    """One attribute per top-level key, JSON types mapped to DynamoDB types, numbers exactly as written.

    Numbers keep every digit, so DynamoDB itself decides whether it can store them (38 significant digits,
    magnitude 1E-130 to 9.99E+125) and a refusal fails the action into the error action, as on AWS:
    https://docs.aws.amazon.com/iot/latest/developerguide/dynamodb-v2-rule-action.html
    """
    if not isinstance(message, dict):
        raise ActionError("the SELECT result is not a JSON object, so it cannot become a DynamoDB item")
    document = json.loads(json.dumps(message), parse_float=Decimal, parse_int=Decimal)
    return {key: _attribute_value(value) for key, value in document.items()}


def _attribute_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [_attribute_value(member) for member in value]}
    return {"M": {key: _attribute_value(member) for key, member in value.items()}}


# The rules engine signs its actions' calls with a key of its own, so the API-call record credits them to it (as
# CloudTrail credits them to the rule's role in AWS), never to a Lambda function that happens to run meanwhile.
RULES_ENGINE_ACCESS_KEY = "iot-rules-engine"


def _client(service: str, region: str) -> Any:
    """A client for the rules engine's own actions (endpoint from ``AWS_ENDPOINT_URL``, standard retries)."""
    return _cached_client(service, region, os.environ.get("AWS_ENDPOINT_URL"))


@functools.cache
def _cached_client(service: str, region: str, endpoint: str | None) -> Any:
    """Cached per endpoint: a local cloud started later in the same process has an endpoint of its own."""
    session = boto3.session.Session(aws_access_key_id=RULES_ENGINE_ACCESS_KEY, aws_secret_access_key="local")
    return session.client(service, region_name=region, endpoint_url=endpoint, config=aws.RETRY_CONFIG)


def _put_item(account_id: str, region: str, config: dict[str, Any], message: Any) -> None:
    table = config["putItem"]["tableName"]
    _client("dynamodb", region).put_item(TableName=table, Item=_dynamodb_item(message))


def _invoke(account_id: str, region: str, config: dict[str, Any], message: Any) -> None:
    from iot_dr_local.lambda_runtime import invoke_function

    function_arn = config["functionArn"]
    invoke_function(account_id, function_arn.split(":")[3], function_arn, message, asynchronous=True)


def _send_message(account_id: str, region: str, config: dict[str, Any], message: Any) -> None:
    body = json.dumps(message)
    if config.get("useBase64"):
        body = base64.b64encode(body.encode()).decode()
    _client("sqs", region).send_message(QueueUrl=config["queueUrl"], MessageBody=body)


# action key -> (runner, the resource a failure entry names)
ACTIONS: dict[str, tuple[Callable[[str, str, dict[str, Any], Any], None], Callable[[dict[str, Any]], str]]] = {
    "dynamoDBv2": (_put_item, lambda config: config["putItem"]["tableName"]),
    "lambda": (_invoke, lambda config: config["functionArn"]),
    "sqs": (_send_message, lambda config: config["queueUrl"]),
}


def _check_rule_sql(sql: str, version: str | None) -> None:
    if (version or SQL_VERSION) != SQL_VERSION:
        raise IoTClientError("SqlParseException", f"the local rules engine only runs SQL version {SQL_VERSION}")
    try:
        parse(sql)
    except RuleSqlError as err:
        raise IoTClientError("SqlParseException", str(err)) from err


def _validate_rule_sql(original: Callable[..., Any]) -> Callable[..., Any]:
    """Reject rules the engine cannot evaluate before they are stored, as AWS rejects SQL it cannot parse."""

    @functools.wraps(original)
    def store_rule(backend: IoTBackend, rule_name: str, *args: Any, **kwargs: Any) -> None:
        sql = args[0] if args else kwargs["sql"]
        _check_rule_sql(sql, kwargs.get("aws_iot_sql_version"))
        original(backend, rule_name, *args, **kwargs)

    return store_rule


class RulesEngine:
    """Evaluates the enabled topic rules of a region for every message published there."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str, str], RuleStats] = {}
        self._statements: dict[str, RuleStatement] = {}
        self._in_flight = 0
        self._patches = Patches()
        self._probe_registered = False

    # ------------------------------------------------------------------------------ installation

    def install(self) -> None:
        """Route iot-data Publish through the engine and validate rule SQL on Create/ReplaceTopicRule."""
        if self._patches.applied:
            raise RuntimeError("the rules engine is already installed")
        self._patches.wrap(IoTDataPlaneBackend, "publish", self._publish_hook)
        self._patches.wrap(IoTBackend, "create_topic_rule", _validate_rule_sql)
        self._patches.wrap(IoTBackend, "replace_topic_rule", _validate_rule_sql)
        if not self._probe_registered:
            self._dispatcher.add_busy_probe(self.busy)
            self._probe_registered = True

    def uninstall(self) -> None:
        self._patches.restore()

    def reset(self) -> None:
        """Forget counters (between tests and benchmark rounds)."""
        with self._lock:
            self._stats.clear()

    def _publish_hook(self, original: Callable[..., None]) -> Callable[..., None]:
        engine = self

        @functools.wraps(original)
        def publish(backend: IoTDataPlaneBackend, topic: str, payload: bytes) -> None:
            original(backend, topic, payload)
            engine.publish(backend.account_id, backend.region_name, topic, payload)

        return publish

    # ------------------------------------------------------------------------------------ public

    def publish(self, account_id: str, region: str, topic: str, payload: bytes, client_id: str | None = None) -> None:
        """Accept a message; rules are evaluated and actions run from the dispatcher."""
        message = _Message(account_id, region, topic, payload, client_id, int(time.time() * 1000))
        with self._lock:
            self._in_flight += 1
        self._dispatcher.submit(self._process, message)

    def busy(self) -> bool:
        with self._lock:
            return self._in_flight > 0

    def stats(self, account_id: str, region: str, rule_name: str) -> RuleStats:
        """A copy of one rule's counters."""
        with self._lock:
            return replace(self._stats.get((account_id, region, rule_name), RuleStats()))

    # ---------------------------------------------------------------------------------- internal

    def _count(self, message: _Message, rule: _Rule, counter: str) -> None:
        with self._lock:
            stats = self._stats.setdefault((message.account_id, message.region, rule.name), RuleStats())
            setattr(stats, counter, getattr(stats, counter) + 1)

    def _statement(self, sql: str) -> RuleStatement:
        with self._lock:
            statement = self._statements.get(sql)
        if statement is None:
            statement = parse(sql)
            with self._lock:
                self._statements[sql] = statement
        return statement

    @staticmethod
    def _enabled_rules(account_id: str, region: str) -> list[_Rule]:
        with SERVICE_LOCK.held():
            rules = iot_backends[account_id][region].rules.values()
            return [
                _Rule(rule.rule_name, rule.sql, copy.deepcopy(rule.actions), copy.deepcopy(rule.error_action))
                for rule in rules
                if not rule.rule_disabled
            ]

    def _process(self, message: _Message) -> None:
        try:
            self._evaluate(message)
        except Exception as err:  # an emulator fault: reported, and the next message is unaffected
            internal_errors.report("rules-engine", err)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _evaluate(self, message: _Message) -> None:
        context = MessageContext(
            message.topic, _decode(message.payload), message.timestamp_ms, message.client_id, message.payload
        )
        for rule in self._enabled_rules(message.account_id, message.region):
            try:
                result = self._statement(rule.sql).evaluate(context)
            except RuleSqlError:
                LOG.exception("topic rule SQL cannot be evaluated locally", extra={"rule": rule.name})
                continue
            if result is not None:
                self._count(message, rule, "matched")
                self._run_rule(message, rule, result)

    def _run_rule(self, message: _Message, rule: _Rule, result: dict[str, Any]) -> None:
        failures = []
        for action in rule.actions:
            failure = self._run_action(message, action, result)
            if failure is None:
                self._count(message, rule, "actions_ok")
            else:
                self._count(message, rule, "actions_failed")
                failures.append(failure)
        if failures and rule.error_action:
            error_message = {
                "ruleName": rule.name,
                "topic": message.topic,
                "cloudwatchTraceId": str(uuid.uuid4()),
                "clientId": message.client_id or "n/a",
                "base64OriginalPayload": base64.b64encode(message.payload).decode(),
                "failures": failures,
            }
            failure = self._run_action(message, rule.error_action, error_message)
            self._count(message, rule, "error_actions_ok" if failure is None else "error_actions_failed")

    def _run_action(self, message: _Message, action: dict[str, Any], payload: Any) -> dict[str, str] | None:
        """Run one action; the documented failure entry when it fails, None when it succeeded."""
        (action_type, config), *others = action.items()
        runner, resource = ACTIONS.get(action_type, (None, None))
        try:
            if others or runner is None or resource is None:
                raise ActionError(f"unsupported rule action {sorted(action)}")
            runner(message.account_id, message.region, config, payload)
        except (ActionError, *SERVICE_ERRORS) as err:
            error_message = describe_error(err)[1]
        except Exception as err:  # an emulator fault: the action failed, and the error action is told so
            internal_errors.report("rules-engine", err)
            error_message = f"InternalFailure: {type(err).__name__}: {err}"
        else:
            return None
        LOG.warning(
            "topic rule action failed",
            extra={"action": action_type, "topic": message.topic, "error": error_message},
        )
        return {
            "failedAction": action_name(action_type),
            "failedResource": resource(config) if resource else "",
            "errorMessage": error_message,
        }
