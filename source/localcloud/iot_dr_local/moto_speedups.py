"""Per-request work of moto that the local cloud does once instead: module scan, parsing, client creation.

moto's server lists its own package directory on every request to recognise a backend by host name; its Step
Functions interpreter parses the state machine's definition again for every execution and creates a new boto3 client
(loading the service model from disk) for every task that calls a service. The results only change with moto's
files, the definition text, or the region and endpoint, so they are cached here. Its IoT registry finds a thing,
certificate or policy by scanning every one in the region although its dictionaries are keyed by the thing's ARN,
the certificate ID and the policy name: a call cost grew with the fleet, so a sync of N devices cost O(N²); they
are looked up by key here. None changes behaviour.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from moto import backends
from moto.iot.exceptions import ResourceNotFoundException
from moto.iot.models import FakeCertificate, FakePolicy, FakeThing, IoTBackend
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.utilities.utils import get_partition

from iot_dr_local.patching import Patches

# Distinct definitions kept parsed; the solution deploys a handful of state machines per region.
PARSED_DEFINITIONS = 64

# Step Functions modules that import ``boto_client_for`` by name (service integrations the solution's workflows use).
_CLIENT_USERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
)

_patches = Patches()


def _moto_modules(original: Any) -> Any:
    modules = tuple(original())

    def list_of_moto_modules() -> Iterable[str]:
        return modules

    return list_of_moto_modules


@functools.lru_cache(maxsize=PARSED_DEFINITIONS)
def parsed_program(definition: str) -> EvalComponent:
    """The evaluation tree of ``definition``, shared by every execution of it.

    Components keep no per-execution state (that lives in the execution's ``Environment``) except a lazily drawn
    heap key; drawing every key now keeps concurrent executions from drawing different keys for one component.
    """
    program = AmazonStateLanguageParser.parse(definition)[0]
    _draw_heap_keys(program)
    return program


def _draw_heap_keys(root: EvalComponent) -> None:
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, EvalComponent):
            _ = value.heap_key
            pending.extend(vars(value).values())
        elif isinstance(value, list | tuple | set):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())


def _evaluation_entrypoint(worker: ExecutionWorker) -> EvalComponent:
    return parsed_program(worker._evaluation_details.state_machine_details.definition)


# Task states of concurrent executions (and the items of their Map states) share one client per service: botocore's
# default pool of 10 connections would be re-opened again and again, with a warning each time.
TASK_CLIENT_CONNECTIONS = 100


@functools.lru_cache(maxsize=64)
def _client(region: str, service: str, port: str) -> BaseClient:
    # botocore clients are thread-safe; moto's own function ignores the state's credentials as well.
    template = boto_client.boto_client_for(region, service)
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=template.meta.endpoint_url,
        aws_access_key_id="ak",
        aws_secret_access_key="sk",
        config=template.meta.config.merge(Config(max_pool_connections=TASK_CLIENT_CONNECTIONS)),
    )


def shared_client(region: str, service: str, state_credentials: Any = None) -> BaseClient:
    """moto's ``boto_client_for``, one client per region, service and moto port (it reads MOTO_PORT each call)."""
    if boto_client.botocore_stubber.enabled:
        return boto_client.boto_client_for(region, service, state_credentials)
    return _client(region, service, str(boto_client.moto_server_port()))


def _describe_thing(backend: IoTBackend, thing_name: str) -> FakeThing:
    # moto stores a thing under its ARN (IoTBackend.create_thing), built from the name as below (FakeThing).
    region, account = backend.region_name, backend.account_id
    thing = backend.things.get(f"arn:{get_partition(region)}:iot:{region}:{account}:thing/{thing_name}")
    if thing is None or thing.thing_name != thing_name:
        raise ResourceNotFoundException()
    return thing


def _describe_certificate(backend: IoTBackend, certificate_id: str) -> FakeCertificate:
    certificate = backend.certificates.get(certificate_id)
    if certificate is None or certificate.certificate_id != certificate_id:
        raise ResourceNotFoundException()
    return certificate


def _get_policy(backend: IoTBackend, policy_name: str) -> FakePolicy:
    policy = backend.policies.get(policy_name)
    if policy is None or policy.name != policy_name:
        raise ResourceNotFoundException()
    return policy


def _principal_by_key(original: Any) -> Any:
    def get_principal(backend: IoTBackend, principal_arn: str) -> Any:
        # A certificate ARN ends in the certificate ID; other principals (groups, Cognito identities) as before.
        if ":cert/" not in principal_arn:
            return original(backend, principal_arn)
        certificate = backend.certificates.get(principal_arn.rsplit(":cert/", 1)[1])
        if certificate is None or certificate.arn != principal_arn:
            raise ResourceNotFoundException()
        return certificate

    return get_principal


def install() -> None:
    """Cache moto's module list and parsed state machine definitions, look IoT resources up by key (idempotent)."""
    if _patches.applied:
        return
    _patches.wrap(backends, "list_of_moto_modules", _moto_modules)
    _patches.set(IoTBackend, "describe_thing", _describe_thing)
    _patches.set(IoTBackend, "describe_certificate", _describe_certificate)
    _patches.set(IoTBackend, "get_policy", _get_policy)
    _patches.wrap(IoTBackend, "_get_principal", _principal_by_key)
    _patches.set(ExecutionWorker, "_get_evaluation_entrypoint", _evaluation_entrypoint)
    for name in _CLIENT_USERS:
        _patches.set(importlib.import_module(name), "boto_client_for", shared_client)


def uninstall() -> None:
    _patches.restore()
    parsed_program.cache_clear()
    _client.cache_clear()
