"""One Lambda execution environment: a child process that loads a handler once and runs invocations one at a time.

Children are forked from multiprocessing's fork server: a clean interpreter started with fork and exec (so the moto
server's threads are never copied into a child) that has imported boto3 once, so a cold start costs a fork and
the handler's own imports instead of a new interpreter. Each child then takes the function's environment only (see
``lambda_worker.serve``). A crash of the child, even a native segmentation fault, or a handler that runs past its
timeout, becomes an invocation error here; the process that runs the local cloud is never at risk.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing import spawn
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from iot_dr_local.lambda_worker import error_payload, serve

LOG = logging.getLogger(__name__)

# Lambda gives the init phase (importing the handler) 10 seconds; a shared 2-core machine under load needs more.
INIT_TIMEOUT_SECONDS = 30.0
# How much of the function's log a failed invocation reports (Lambda's LogType=Tail returns the last 4 KB).
LOG_TAIL_BYTES = 4096
# Variables of the host that a Python process needs; nothing else of the host leaks into the function.
_HOST_VARIABLES = ("PATH", "LANG", "LC_ALL", "TMPDIR")
# Imported once by the fork server: what every handler of the solution imports first, but not the layer's own package,
# which each function must load from its own /opt.
_PRELOAD = ["iot_dr_local.lambda_worker", "boto3", "botocore.session", "botocore.client"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(_PRELOAD)
# Process.start() keeps module-level bookkeeping in multiprocessing; starts are quick, so they take turns.
_START_LOCK = threading.Lock()
_STARTING = threading.local()


def _without_main_module(original: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    """multiprocessing makes every child import the parent's main module again (seconds, for a program that imports
    moto) unless the fork server preloaded it, which Python 3.11's fork server never does. An execution environment
    needs nothing from the parent's main module, so its start leaves it out; every other start is unchanged."""

    @functools.wraps(original)
    def get_preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if getattr(_STARTING, "environment", False):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    return get_preparation_data


spawn.get_preparation_data = _without_main_module(spawn.get_preparation_data)


@dataclass(frozen=True)
class WorkerSpec:
    """What an execution environment is made of. ``task_root`` is ``/var/task``, ``opt_root`` is ``/opt``."""

    task_root: Path
    opt_root: Path | None
    handler: str
    environment: Mapping[str, str]
    function: Mapping[str, Any]
    """``name``, ``arn``, ``version`` and ``memory_size`` for the context object."""


@dataclass(frozen=True)
class WorkerResult:
    payload: str
    errored: bool
    log: str


class WorkerProcess:
    """A started execution environment. Not thread-safe: one invocation at a time, as in Lambda."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        descriptor, log_path = tempfile.mkstemp(prefix="iot-dr-lambda-", suffix=".log")
        os.close(descriptor)
        self._log_path = Path(log_path)
        self._log_read = 0

    @property
    def alive(self) -> bool:
        process = self._process
        try:
            return process is not None and process.is_alive()
        except ValueError:  # stopped by another thread meanwhile (the local cloud shutting down)
            return False

    def start(self) -> WorkerResult | None:
        """Start the process and run the init phase; the init error as a failed result, or None when ready."""
        environment = {name: os.environ[name] for name in _HOST_VARIABLES if name in os.environ}
        environment.update(self.spec.environment)
        environment["LAMBDA_TASK_ROOT"] = str(self.spec.task_root)
        init = {
            "task_root": str(self.spec.task_root),
            "opt_root": str(self.spec.opt_root) if self.spec.opt_root else None,
            "handler": self.spec.handler,
            "function": dict(self.spec.function),
            "environment": environment,
            "log_path": str(self._log_path),
        }
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=serve, args=(theirs, init), daemon=True, name=self.spec.function.get("name"))
        with _START_LOCK:
            _STARTING.environment = True
            try:
                process.start()
            finally:
                _STARTING.environment = False
        theirs.close()
        self._process, self._connection = process, ours
        request_id = str(uuid.uuid4())
        try:
            if not ours.poll(INIT_TIMEOUT_SECONDS):
                return self._failure(request_id, "Runtime.InitTimeout", "Init phase did not finish in time")
            answer = ours.recv()
        except (EOFError, OSError):
            return self._failure(request_id, "Runtime.ExitError", self._exit_message(request_id))
        if not answer["ready"]:
            self.stop()
            return WorkerResult(answer["payload"], True, answer["log"])
        return None

    def invoke(self, event: Any, request_id: str, timeout: float) -> WorkerResult:
        """Run one invocation; a timeout or a crash stops the process and is reported as Lambda reports it."""
        connection = self._connection
        assert connection is not None, "start() first"
        request = {"request_id": request_id, "event": event, "remaining_ms": int(timeout * 1000)}
        try:
            connection.send(request)
            if not connection.poll(timeout):
                message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
                return self._failure(request_id, "Sandbox.Timedout", message)
            answer = connection.recv()
        except (EOFError, OSError):
            return self._failure(request_id, "Runtime.ExitError", self._exit_message(request_id))
        return WorkerResult(answer["payload"], bool(answer["errored"]), answer["log"])

    def new_output(self) -> str:
        """What the environment printed since the last call (its standard output and error, as Lambda forwards
        them to CloudWatch Logs)."""
        try:
            with self._log_path.open("rb") as log:
                log.seek(self._log_read)
                data = log.read()
        except FileNotFoundError:
            return ""
        # Only whole lines: a line still being written is read next time.
        complete = data[: data.rfind(b"\n") + 1]
        self._log_read += len(complete)
        return complete.decode("utf-8", "replace")

    def stop(self) -> None:
        """Kill the process (Lambda discards environments without notice), reap it and remove its log."""
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._process.close()
            self._process = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._log_path.unlink(missing_ok=True)

    def _failure(self, request_id: str, error_type: str, message: str) -> WorkerResult:
        """The environment is discarded: its last log lines go with the error."""
        log = self._log_tail()
        self.stop()
        return WorkerResult(payload=json.dumps(error_payload(request_id, error_type, message)), errored=True, log=log)

    def _log_tail(self) -> str:
        try:
            with self._log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _exit_message(self, request_id: str) -> str:
        process = self._process
        assert process is not None
        process.join()
        code = process.exitcode or 0
        cause = f"signal: {(signal.strsignal(-code) or str(-code)).lower()}" if code < 0 else f"exit status {code}"
        return f"RequestId: {request_id} Error: Runtime exited with error: {cause}"
