"""Per-request work of moto that the local cloud does once instead: module scan, parsing, client creation.

moto's server lists its own package directory on every request to recognise a backend by host name; its Step
Functions interpreter parses the state machine's definition again for every execution and creates a new boto3 client
(loading the service model from disk) for every task that calls a service. The results only change with moto's
files, the definition text, or the region and endpoint, so they are cached here. None changes behaviour.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from typing import Any

from botocore.client import BaseClient
from moto import backends
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

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


@functools.lru_cache(maxsize=64)
def _client(region: str, service: str, port: str) -> BaseClient:
    # botocore clients are thread-safe; moto's own function ignores the state's credentials as well.
    return boto_client.boto_client_for(region, service)


def shared_client(region: str, service: str, state_credentials: Any = None) -> BaseClient:
    """moto's ``boto_client_for``, one client per region, service and moto port (it reads MOTO_PORT each call)."""
    if boto_client.botocore_stubber.enabled:
        return boto_client.boto_client_for(region, service, state_credentials)
    return _client(region, service, str(boto_client.moto_server_port()))


def install() -> None:
    """Cache moto's module list and parsed state machine definitions (idempotent)."""
    if _patches.applied:
        return
    _patches.wrap(backends, "list_of_moto_modules", _moto_modules)
    _patches.set(ExecutionWorker, "_get_evaluation_entrypoint", _evaluation_entrypoint)
    for name in _CLIENT_USERS:
        _patches.set(importlib.import_module(name), "boto_client_for", shared_client)


def uninstall() -> None:
    _patches.restore()
    parsed_program.cache_clear()
    _client.cache_clear()
