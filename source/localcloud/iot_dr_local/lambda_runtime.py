"""Lambda functions run their real handler code in this process, as the Lambda service would run them.

moto can only run a function in Docker. Here the handler module is loaded from the function's own
deployment package and called with the function's environment, so every path that invokes a function
(the Invoke API, Step Functions tasks, stream pollers, EventBridge, the rules engine) runs the code that
ships. A handler exception becomes the Lambda error payload, whose ``errorType`` Step Functions matches
in Retry and Catch.

Invocations run one at a time because ``os.environ`` is process-wide, so a handler must not invoke
another function synchronously (it would wait for itself); asynchronous invocations are fine.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import types
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.sqs.models import sqs_backends

from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.moto_fixes import lambda_payloads
from iot_dr_local.patching import Patches

if TYPE_CHECKING:
    from iot_dr_local.dispatcher import Dispatcher

LOG = logging.getLogger(__name__)

LAMBDA_ACCESS_KEY_PREFIX = "lambda-"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Lambda retries a failed asynchronous invocation twice (after about 1 and 2 minutes); locally the
# waits are short so tests stay fast.
DEFAULT_ASYNC_RETRY_DELAYS = (0.05, 0.1)

Handler = Callable[[Any, Any], Any]


class LambdaInvocationError(Exception):
    """A function invocation ended in a function error; ``error_type`` is the Lambda ``errorType``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class _StartupError(Exception):
    """The handler could not be loaded; carries the error type the Lambda runtime reports for it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class FunctionSnapshot:
    """What an invocation needs from moto's function model, read once under the service lock."""

    account_id: str
    region: str
    name: str
    arn: str
    version: str
    handler: str
    runtime: str
    code_digest: str
    code_bytes: bytes
    environment: Mapping[str, str]
    memory_size: int
    timeout: int
    dead_letter_target: str | None

    @classmethod
    def of(cls, fn: LambdaFunction) -> FunctionSnapshot:
        return cls(
            account_id=fn.account_id,
            region=fn.region,
            name=fn.function_name,
            arn=fn.function_arn,
            version=str(fn.version),
            handler=fn.handler or "",
            runtime=fn.run_time or "",
            code_digest=getattr(fn, "code_digest", ""),
            code_bytes=getattr(fn, "code_bytes", b""),
            environment={name: _environment_text(value) for name, value in (fn.environment_vars or {}).items()},
            memory_size=int(fn.memory_size),
            timeout=int(fn.timeout),
            dead_letter_target=(getattr(fn, "dead_letter_config", None) or {}).get("TargetArn"),
        )


def _environment_text(value: Any) -> str:
    """Environment values are strings; a template may give numbers or booleans, which Lambda stringifies."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@dataclass(frozen=True)
class InvocationResult:
    payload: str
    errored: bool
    log: str


class LambdaContext:
    """The context object the Python runtime passes to a handler."""

    def __init__(self, function: FunctionSnapshot, request_id: str) -> None:
        self.function_name = function.name
        self.function_version = function.version
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[{function.version}]{request_id}"
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _Stats:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0


class LambdaRuntime:
    """Loads handlers from deployment packages and runs them one at a time (``os.environ`` is shared)."""

    def __init__(
        self,
        endpoint_url: str,
        dispatcher: Dispatcher,
        async_retry_delays: tuple[float, ...] = DEFAULT_ASYNC_RETRY_DELAYS,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.dispatcher = dispatcher
        self.async_retry_delays = async_retry_delays
        self._invoke_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._modules: list[str] = []
        self._stats: dict[str, _Stats] = {}
        self._in_flight = 0
        dispatcher.add_busy_probe(self.busy)

    def busy(self) -> bool:
        with self._state_lock:
            return self._in_flight > 0

    def reset(self) -> None:
        """Forget loaded handlers and statistics (after a moto reset, code with the same digest may differ)."""
        with self._invoke_lock, self._state_lock:
            for name in self._modules:
                sys.modules.pop(name, None)
            self._modules.clear()
            self._handlers.clear()
            self._stats.clear()

    def stats(self, reset: bool = False) -> dict[str, dict[str, float]]:
        with self._state_lock:
            snapshot = {
                arn: {"count": s.count, "errors": s.errors, "seconds": s.seconds} for arn, s in self._stats.items()
            }
            if reset:
                self._stats.clear()
        return snapshot

    def execute(self, fn: LambdaFunction, event: Any) -> InvocationResult:
        """Run ``fn`` on ``event``; callable with or without the service lock held."""
        with SERVICE_LOCK.held():
            function = FunctionSnapshot.of(fn)
        return self.run(function, event)

    def run(self, function: FunctionSnapshot, event: Any) -> InvocationResult:
        with self._state_lock:
            self._in_flight += 1
        started = time.monotonic()
        result: InvocationResult | None = None
        try:
            # The handler's own AWS calls need the service lock; a moto dispatch may be waiting on us.
            with SERVICE_LOCK.released(), self._invoke_lock:
                result = self._call(function, event)
        finally:
            elapsed = time.monotonic() - started
            with self._state_lock:
                self._in_flight -= 1
                stats = self._stats.setdefault(function.arn, _Stats())
                stats.count += 1
                stats.seconds += elapsed
                if result is None or result.errored:
                    stats.errors += 1
        return result

    def _call(self, function: FunctionSnapshot, event: Any) -> InvocationResult:
        request_id = str(uuid.uuid4())
        with _environment(self._environment_for(function)):
            try:
                handler = self._handler(function)
                response = handler(event, LambdaContext(function, request_id))
            except _StartupError as err:
                return _error_result(request_id, err.error_type, str(err), err)
            except Exception as err:  # the runtime turns any handler exception into the error payload
                LOG.info(
                    "function error",
                    extra={"function": function.name, "error_type": type(err).__name__},
                )
                return _error_result(request_id, type(err).__name__, str(err), err)
        try:
            payload = json.dumps(response)
        except TypeError as err:
            return _error_result(request_id, "Runtime.MarshalError", f"Unable to marshal response: {err}", err)
        return InvocationResult(payload=payload, errored=False, log="")

    def _environment_for(self, function: FunctionSnapshot) -> dict[str, str]:
        env = dict(function.environment)
        env.update(FAKE_CREDENTIALS)
        # Each function calls AWS with an identity of its own, as with its execution role; the API-call
        # recorder attributes calls by it.
        env["AWS_ACCESS_KEY_ID"] = f"{LAMBDA_ACCESS_KEY_PREFIX}{function.name}"
        env.update(
            {
                "AWS_REGION": function.region,
                "AWS_DEFAULT_REGION": function.region,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
                "AWS_LAMBDA_FUNCTION_VERSION": function.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "_HANDLER": function.handler,
            }
        )
        return env

    def _handler(self, function: FunctionSnapshot) -> Handler:
        key = (function.code_digest, function.handler)
        handler = self._handlers.get(key)
        if handler is None:
            handler = self._load(function)
            self._handlers[key] = handler
        return handler

    def _load(self, function: FunctionSnapshot) -> Handler:
        module_path, _, attribute = function.handler.rpartition(".")
        if not module_path or not attribute:
            raise _StartupError("Runtime.MalformedHandlerName", f"Bad handler '{function.handler}'")
        file_name = module_path.replace(".", "/") + ".py"
        try:
            with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as package:
                source = package.read(file_name).decode("utf-8")
        except (KeyError, zipfile.BadZipFile) as err:
            raise _StartupError(
                "Runtime.ImportModuleError",
                f"Unable to import module '{module_path}': No module named '{module_path}'",
            ) from err
        module_name = f"_lambda_{function.code_digest[:16]}_{module_path.replace('.', '_')}"
        module = types.ModuleType(module_name)
        module.__file__ = f"/var/task/{file_name}"
        # Registered so dataclasses and typing can resolve the module's own names.
        sys.modules[module_name] = module
        try:
            exec(compile(source, module.__file__, "exec"), module.__dict__)
        except SyntaxError as err:
            sys.modules.pop(module_name, None)
            raise _StartupError("Runtime.UserCodeSyntaxError", str(err)) from err
        except ImportError as err:
            sys.modules.pop(module_name, None)
            raise _StartupError("Runtime.ImportModuleError", f"Unable to import module '{module_path}': {err}") from err
        self._modules.append(module_name)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise _StartupError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_path}'")
        return handler

    def invoke(self, account_id: str, region: str, function: str, event: Any) -> Any:
        """Synchronous invocation: the decoded response, or ``LambdaInvocationError``."""
        result = self.run(_resolve(account_id, region, function), _as_delivered(event))
        decoded = json.loads(result.payload)
        if result.errored:
            raise LambdaInvocationError(decoded["errorType"], decoded["errorMessage"])
        return decoded

    def invoke_async(self, account_id: str, region: str, function: str, event: Any) -> None:
        """Queue an asynchronous invocation; an unknown function fails now, as the Invoke API does."""
        snapshot = _resolve(account_id, region, function)
        with self._state_lock:
            self._in_flight += 1
        self.dispatcher.submit(self._run_async, snapshot, _as_delivered(event))

    def _run_async(self, function: FunctionSnapshot, event: Any) -> None:
        try:
            for delay in (0.0, *self.async_retry_delays):
                time.sleep(delay)
                result = self.run(_resolve(function.account_id, function.region, function.arn), event)
                if not result.errored:
                    return
            self._dead_letter(function, event, result)
        finally:
            with self._state_lock:
                self._in_flight -= 1

    def _dead_letter(self, function: FunctionSnapshot, event: Any, result: InvocationResult) -> None:
        error = json.loads(result.payload)
        LOG.warning(
            "asynchronous invocation failed after retries",
            extra={"function": function.name, "error_type": error["errorType"]},
        )
        if function.dead_letter_target is None:
            return
        send_to_queue(
            function.dead_letter_target,
            json.dumps(event),
            {
                "RequestID": str(uuid.uuid4()),
                "ErrorCode": "200",
                "ErrorMessage": error["errorMessage"],
            },
        )


def _as_delivered(event: Any) -> Any:
    """The event as the function receives it: JSON, never an object shared with the caller."""
    return json.loads(json.dumps(event))


def _error_result(request_id: str, error_type: str, message: str, err: BaseException) -> InvocationResult:
    trace = traceback.format_tb(err.__traceback__)
    payload = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace,
    }
    log = "".join(traceback.format_exception(err))
    return InvocationResult(payload=json.dumps(payload), errored=True, log=log)


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _resolve(account_id: str, region: str, function: str) -> FunctionSnapshot:
    """Find a function by name or ARN; an ARN names its own account and region."""
    if function.startswith("arn:"):
        parts = function.split(":")
        region, account_id = parts[3], parts[4]
    with SERVICE_LOCK.held():
        return FunctionSnapshot.of(lambda_backends[account_id][region].get_function(function))


def send_to_queue(queue_arn: str, body: str, attributes: Mapping[str, str] | None = None) -> None:
    """Put a message on an SQS queue named by ARN (dead-letter queues and on-failure destinations)."""
    parts = queue_arn.split(":")
    if parts[2] != "sqs":
        raise ValueError(f"only SQS destinations are supported locally, got {queue_arn}")
    message_attributes = {
        name: {"DataType": "Number" if value.isdigit() else "String", "StringValue": value}
        for name, value in (attributes or {}).items()
    }
    with SERVICE_LOCK.held():
        sqs_backends[parts[4]][parts[3]].send_message(parts[5], body, message_attributes=message_attributes)


_runtime: LambdaRuntime | None = None
_patches = Patches()


def _current() -> LambdaRuntime:
    if _runtime is None:
        raise RuntimeError("iot_dr_local.lambda_runtime.install() has not been called")
    return _runtime


def _invoke_lambda(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    if isinstance(event, str | bytes):
        event = json.loads(event)
    result = _current().execute(fn, {} if event is None else event)
    return result.payload, result.errored, result.log


def _invoke(fn: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    event = json.loads(body) if body else {}
    invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
    lambda_payloads.check_request(body, invocation_type)
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        _current().invoke_async(fn.account_id, fn.region, fn.function_arn, event)
        return b""
    result = _current().execute(fn, event)
    payload, errored = lambda_payloads.limited_response(result.payload, result.errored)
    if errored:
        response_headers["x-amz-function-error"] = "Unhandled"
    response_headers["x-amz-log-result"] = base64.b64encode(result.log[-4096:].encode()).decode()
    return payload.encode("utf-8")


def _init(fn: LambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    _patches.original(LambdaFunction, "__init__")(fn, account_id, spec, *args, **kwargs)
    fn.dead_letter_config = spec.get("DeadLetterConfig") or None


def _update_configuration(fn: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
    if "DeadLetterConfig" in config_updates:
        fn.dead_letter_config = config_updates["DeadLetterConfig"] or None
    return _patches.original(LambdaFunction, "update_configuration")(fn, config_updates)


def _get_configuration(fn: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    config = _patches.original(LambdaFunction, "get_configuration")(fn, on_create)
    if getattr(fn, "dead_letter_config", None):
        config["DeadLetterConfig"] = fn.dead_letter_config
    return config


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "_invoke_lambda": _invoke_lambda,
    "invoke": _invoke,
    "__init__": _init,
    "update_configuration": _update_configuration,
    "get_configuration": _get_configuration,
}


def install(
    endpoint_url: str,
    dispatcher: Dispatcher,
    async_retry_delays: tuple[float, ...] = DEFAULT_ASYNC_RETRY_DELAYS,
) -> LambdaRuntime:
    """Run Lambda functions in-process; handler AWS calls go to ``endpoint_url``. Reinstalling replaces."""
    global _runtime
    if not _patches.applied:
        for name, replacement in _REPLACEMENTS.items():
            _patches.set(LambdaFunction, name, replacement)
    _runtime = LambdaRuntime(endpoint_url, dispatcher, async_retry_delays)
    return _runtime


def stop() -> None:
    """Give moto its own Lambda implementation back."""
    global _runtime
    _patches.restore()
    if _runtime is not None:
        _runtime.reset()
    _runtime = None


def reset() -> None:
    _current().reset()


def invoke_function(
    account_id: str, region: str, function: str, event: dict[str, Any], asynchronous: bool = False
) -> Any:
    """Invoke a function (name or ARN) as another AWS service would.

    Synchronous calls return the decoded response and raise ``LambdaInvocationError`` on a function
    error; asynchronous calls return None and are retried, then dead-lettered, like Lambda's event queue.
    """
    runtime = _current()
    if asynchronous:
        runtime.invoke_async(account_id, region, function, event)
        return None
    return runtime.invoke(account_id, region, function, event)


def invocation_stats(reset: bool = False) -> dict[str, dict[str, float]]:
    """Per function ARN: ``count``, ``errors`` and total ``seconds`` of invocations since the last reset."""
    return _current().stats(reset)
