"""Per-request work of moto that the local cloud does once instead: the module scan and state machine parsing.

moto's server lists its own package directory on every request to recognise a backend by host name, and its Step
Functions interpreter parses the state machine's definition again for every execution. Both results only change
with moto's files or the definition text, so they are cached here. Neither changes behaviour.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from moto import backends
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from iot_dr_local.patching import Patches

# Distinct definitions kept parsed; the solution deploys a handful of state machines per region.
PARSED_DEFINITIONS = 64

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


def install() -> None:
    """Cache moto's module list and parsed state machine definitions (idempotent)."""
    if _patches.applied:
        return
    _patches.wrap(backends, "list_of_moto_modules", _moto_modules)
    _patches.set(ExecutionWorker, "_get_evaluation_entrypoint", _evaluation_entrypoint)


def uninstall() -> None:
    _patches.restore()
    parsed_program.cache_clear()
