"""The code one Lambda execution environment runs, in a process forked from the local cloud's fork server.

``worker_process.WorkerProcess`` starts ``serve`` with the function's environment, its extracted deployment package
(``/var/task`` in Lambda) and its layers directory (``/opt``). ``serve`` replaces the process environment with the
function's, puts ``<task>`` and ``<opt>/python`` first on ``sys.path`` as the Python runtime does, sends what the
handler prints (file descriptors 1 and 2, so native code too) to the environment's log file, imports the handler (the
init phase) and answers ``{"ready": true}`` or the init error. Then each message is one invocation, answered with
``{"payload": <JSON text>, "errored": bool, "log": str}``. The process ends when the connection closes and dies with
its parent, so it never outlives the local cloud.

Only the standard library is imported here, so the handler's own imports decide what the process loads.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Handler = Callable[[Any, Any], Any]

# Local directory -> the path Lambda shows for it, so stack traces read as they do in Lambda.
_LAMBDA_PATHS: dict[str, str] = {}


class LambdaContext:
    """The context object the Python runtime passes to a handler."""

    def __init__(self, function: dict[str, Any], request_id: str, remaining_ms: int) -> None:
        self.function_name = function["name"]
        self.function_version = function["version"]
        self.invoked_function_arn = function["arn"]
        self.memory_limit_in_mb = function["memory_size"]
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function['name']}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[{function['version']}]{request_id}"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def error_payload(request_id: str, error_type: str, message: str, err: BaseException | None = None) -> dict[str, Any]:
    """Lambda's function-error payload; Step Functions matches ``errorType`` in Retry and Catch."""
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": [_lambda_paths(frame) for frame in traceback.format_tb(err.__traceback__)] if err else [],
    }


def _lambda_paths(text: str) -> str:
    for local, shown in _LAMBDA_PATHS.items():
        text = text.replace(local, shown)
    return text


def _error_response(request_id: str, error_type: str, message: str, err: BaseException) -> dict[str, Any]:
    return {
        "payload": json.dumps(error_payload(request_id, error_type, message, err)),
        "errored": True,
        "log": _lambda_paths("".join(traceback.format_exception(err))),
    }


def _load_handler(name: str) -> Handler:
    module_path, _, attribute = name.rpartition(".")
    if not module_path or not attribute:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{name}'")
    try:
        module = importlib.import_module(module_path)
    except SyntaxError as err:
        raise _InitError("Runtime.UserCodeSyntaxError", str(err)) from err
    except ImportError as err:
        raise _InitError("Runtime.ImportModuleError", f"Unable to import module '{module_path}': {err}") from err
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise _InitError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_path}'")
    return handler


def _invoke(handler: Handler, function: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    request_id = request["request_id"]
    try:
        response = handler(request["event"], LambdaContext(function, request_id, request["remaining_ms"]))
    except Exception as err:  # the runtime turns any handler exception into the error payload
        return _error_response(request_id, type(err).__name__, str(err), err)
    try:
        payload = json.dumps(response)
    except TypeError as err:
        return _error_response(request_id, "Runtime.MarshalError", f"Unable to marshal response: {err}", err)
    return {"payload": payload, "errored": False, "log": ""}


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent (the fork server) ends, even by ``kill -9``."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _redirect_output(log_path: str) -> None:
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def serve(connection: Connection, init: dict[str, Any]) -> None:
    """Run one execution environment on ``connection`` until it closes (see the module docstring)."""
    _die_with_parent()
    _redirect_output(init["log_path"])
    os.environ.clear()
    os.environ.update(init["environment"])
    os.chdir(init["task_root"])
    opt_root = init.get("opt_root")
    layer_paths = [os.path.join(opt_root, "python")] if opt_root else []
    sys.path[:0] = [init["task_root"], *layer_paths]
    _LAMBDA_PATHS[init["task_root"]] = "/var/task"
    if opt_root:
        _LAMBDA_PATHS[opt_root] = "/opt"
    function = init["function"]
    try:
        handler = _load_handler(init["handler"])
    except _InitError as err:
        connection.send({"ready": False, **_error_response("init", err.error_type, str(err), err)})
        return
    connection.send({"ready": True})
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        response = _invoke(handler, function, request)
        sys.stdout.flush()
        sys.stderr.flush()
        connection.send(response)
