"""One Lambda execution environment: a child Python process that loads a handler once and runs invocations.

The process is started with ``subprocess`` (fork and exec, no Python code runs between them, so the moto server's
threads are never copied into a half-working child) and with only the function's environment, as a Lambda
execution environment has. A crash of the process, even a native segmentation fault, or a handler that runs past
its timeout, becomes an invocation error here; the process that runs the local cloud is never at risk.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from iot_dr_local.lambda_worker import error_payload
from iot_dr_local.worker_protocol import ChannelClosed, ChannelTimeout, read_message, write_message

LOG = logging.getLogger(__name__)

# Lambda gives the init phase (importing the handler) 10 seconds; a shared 2-core machine under load starting a
# Python process that imports boto3 needs more headroom than that.
INIT_TIMEOUT_SECONDS = 30.0
# How much of the function's log a failed invocation reports (Lambda's LogType=Tail returns the last 4 KB).
LOG_TAIL_LINES = 50
# Variables of the host that a Python process needs to start; nothing else of the host leaks into the function.
_HOST_VARIABLES = ("PATH", "LANG", "LC_ALL", "TMPDIR")


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
        self._log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._process: subprocess.Popen[bytes] | None = None
        self._logger = logging.getLogger(f"{__name__}.{spec.function.get('name', 'function')}")

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> WorkerResult | None:
        """Start the process and run the init phase; the init error as a failed result, or None when ready."""
        environment = {name: os.environ[name] for name in _HOST_VARIABLES if name in os.environ}
        environment.update(self.spec.environment)
        environment["LAMBDA_TASK_ROOT"] = str(self.spec.task_root)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "iot_dr_local.lambda_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.spec.task_root,
            env=environment,
        )
        threading.Thread(target=self._drain_log, args=(self._process.stderr,), daemon=True).start()
        init = {
            "task_root": str(self.spec.task_root),
            "opt_root": str(self.spec.opt_root) if self.spec.opt_root else None,
            "handler": self.spec.handler,
            "function": dict(self.spec.function),
        }
        request_id = str(uuid.uuid4())
        try:
            write_message(self._stdin_fd(), init)
            answer = read_message(self._stdout_fd(), time.monotonic() + INIT_TIMEOUT_SECONDS)
        except ChannelTimeout:
            self.stop()
            return self._failure(request_id, "Runtime.InitTimeout", "Init phase did not finish in time")
        except ChannelClosed:
            return self._failure(request_id, "Runtime.ExitError", self._exit_message(request_id))
        if not answer["ready"]:
            self.stop()
            return WorkerResult(answer["payload"], True, answer["log"])
        return None

    def invoke(self, event: Any, request_id: str, timeout: float) -> WorkerResult:
        """Run one invocation; a timeout or a crash stops the process and is reported as Lambda reports it."""
        request = {"request_id": request_id, "event": event, "remaining_ms": int(timeout * 1000)}
        try:
            write_message(self._stdin_fd(), request)
            answer = read_message(self._stdout_fd(), time.monotonic() + timeout)
        except ChannelTimeout:
            self.stop()
            message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
            return self._failure(request_id, "Sandbox.Timedout", message)
        except ChannelClosed:
            return self._failure(request_id, "Runtime.ExitError", self._exit_message(request_id))
        return WorkerResult(answer["payload"], bool(answer["errored"]), answer["log"])

    def stop(self) -> None:
        """Kill the process (Lambda freezes or discards environments without notice) and reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def _failure(self, request_id: str, error_type: str, message: str) -> WorkerResult:
        payload = error_payload(request_id, error_type, message)
        return WorkerResult(payload=json.dumps(payload), errored=True, log="\n".join(self._log_tail))

    def _exit_message(self, request_id: str) -> str:
        process = self._process
        assert process is not None
        code = process.wait()
        cause = f"signal: {(signal.strsignal(-code) or str(-code)).lower()}" if code < 0 else f"exit status {code}"
        self.stop()
        return f"RequestId: {request_id} Error: Runtime exited with error: {cause}"

    def _stdin_fd(self) -> int:
        assert self._process is not None and self._process.stdin is not None
        return self._process.stdin.fileno()

    def _stdout_fd(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        return self._process.stdout.fileno()

    def _drain_log(self, stream: IO[bytes]) -> None:
        """The function's log (its stderr and stdout): kept for error reports and passed to logging at DEBUG."""
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self._log_tail.append(line)
                self._logger.debug(line)
