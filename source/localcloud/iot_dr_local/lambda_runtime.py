"""Lambda functions run their real handler code in worker processes, as Lambda execution environments do.

moto can only run a function in Docker. Here each function gets execution environments of its own
(``worker_process.WorkerProcess``): a Python process started with the function's environment, its deployment
package extracted as ``/var/task`` and its layers as ``/opt``, so every path that invokes a function (the Invoke
API, Step Functions tasks, stream pollers, EventBridge, the rules engine) runs the artifacts that ship. A handler
exception becomes the Lambda error payload, whose ``errorType`` Step Functions matches in Retry and Catch; a
handler that runs past the function's Timeout is killed (``Sandbox.Timedout``) and a crashing process, even a
native fault, is a ``Runtime.ExitError`` of that invocation only.

Warm environments are reused. Concurrent invocations of a function scale up to its ``ReservedConcurrentExecutions``
or, without one, to the account's concurrency (``account_concurrency``, a small local stand-in for Lambda's 1,000);
beyond it synchronous invocations wait and asynchronous ones stay queued, as Lambda's throttling would have them
retried (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.sqs.models import sqs_backends

from iot_dr_local import emf_metrics
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.lambda_worker import error_payload
from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.moto_fixes import lambda_payloads
from iot_dr_local.patching import Patches
from iot_dr_local.worker_process import WorkerProcess, WorkerResult, WorkerSpec

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
# Lambda's default account concurrency is 1,000; each local environment is a process on a small machine, so the
# local account runs at most this many at once (and keeps at most this many warm).
DEFAULT_ACCOUNT_CONCURRENCY = 16
# Warm environments kept across functions (Lambda keeps idle ones for minutes); beyond this the oldest idle go.
# Children of the fork server share most of their memory with it.
MAX_WARM_ENVIRONMENTS = 48

InvocationResult = WorkerResult


class LambdaInvocationError(Exception):
    """A function invocation ended in a function error; ``error_type`` is the Lambda ``errorType``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class LayerSnapshot:
    arn: str
    code_digest: str
    code_bytes: bytes


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
    layers: tuple[LayerSnapshot, ...] = ()
    reserved_concurrency: int | None = None

    @classmethod
    def of(cls, fn: LambdaFunction) -> FunctionSnapshot:
        reserved = getattr(fn, "reserved_concurrency", None)
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
            layers=tuple(_layer(fn, layer["Arn"]) for layer in getattr(fn, "layers", None) or []),
            reserved_concurrency=None if reserved in (None, "") else int(reserved),
        )

    @property
    def signature(self) -> str:
        """Changes whenever code or configuration does; warm environments of an older signature are discarded."""
        parts = [
            self.code_digest,
            self.handler,
            json.dumps(sorted(self.environment.items())),
            *(layer.code_digest for layer in self.layers),
            str(self.memory_size),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _layer(fn: LambdaFunction, arn: str) -> LayerSnapshot:
    version = lambda_backends[fn.account_id][fn.region].layers_versions_by_arn(arn)
    if version is None:
        raise ValueError(f"layer version {arn} of {fn.function_name} does not exist")
    return LayerSnapshot(arn, version.code_digest, version.code_bytes)


def _environment_text(value: Any) -> str:
    """Environment values are strings; a template may give numbers or booleans, which Lambda stringifies."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@dataclass
class _Stats:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0


class CodeStore:
    """Deployment packages and layers extracted once per code digest, as ``/var/task`` and ``/opt``."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="iot-dr-lambda-")
        self._lock = threading.Lock()

    def task_root(self, function: FunctionSnapshot) -> Path:
        return self._extracted(f"task-{function.code_digest[:32]}", [function.code_bytes])

    def opt_root(self, function: FunctionSnapshot) -> Path | None:
        """The layers extracted in order into one directory; a later layer's file replaces an earlier one's."""
        if not function.layers:
            return None
        key = hashlib.sha256("\0".join(layer.code_digest for layer in function.layers).encode()).hexdigest()
        return self._extracted(f"opt-{key[:32]}", [layer.code_bytes for layer in function.layers])

    def _extracted(self, name: str, archives: list[bytes]) -> Path:
        target = Path(self._directory.name) / name
        with self._lock:
            if not target.exists():
                staging = target.with_name(name + ".partial")
                staging.mkdir()
                for archive in archives:
                    try:
                        with zipfile.ZipFile(io.BytesIO(archive)) as package:
                            package.extractall(staging)
                    except zipfile.BadZipFile:
                        LOG.warning("deployment package is not a zip file", extra={"package": name})
                staging.rename(target)
        return target

    def cleanup(self) -> None:
        self._directory.cleanup()


@dataclass
class _Pool:
    """The execution environments of one function: warm ones waiting, and how many invocations run now."""

    signature: str
    idle: list[WorkerProcess] = field(default_factory=list)
    active: int = 0


class LambdaRuntime:
    """Runs invocations in per-function worker processes, within the concurrency limits Lambda applies."""

    def __init__(
        self,
        endpoint_url: str,
        dispatcher: Dispatcher,
        async_retry_delays: tuple[float, ...] = DEFAULT_ASYNC_RETRY_DELAYS,
        account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
    ) -> None:
        if account_concurrency < 1:
            raise ValueError("account_concurrency must be at least 1")
        self.endpoint_url = endpoint_url
        self.dispatcher = dispatcher
        self.async_retry_delays = async_retry_delays
        self.account_concurrency = account_concurrency
        self._code = CodeStore()
        self._capacity = threading.Condition()
        self._pools: dict[str, _Pool] = {}
        self._active = 0
        self._state_lock = threading.Lock()
        self._stats: dict[str, _Stats] = {}
        self._in_flight = 0
        # Lambda's own event queue: asynchronous invocations waiting for concurrency must not hold up the
        # local cloud's other background work.
        self._event_queue = Dispatcher(workers=account_concurrency)
        dispatcher.add_busy_probe(self.busy)

    def busy(self) -> bool:
        with self._state_lock:
            return self._in_flight > 0

    def reset(self) -> None:
        """Discard warm environments and statistics (after a moto reset, a function name may name another function)."""
        self._discard_idle()
        with self._state_lock:
            self._stats.clear()

    def close(self) -> None:
        """Stop every worker process and remove the extracted code."""
        self._event_queue.shutdown()
        self._discard_idle()
        self._code.cleanup()

    def _discard_idle(self) -> None:
        with self._capacity:
            idle = [worker for pool in self._pools.values() for worker in pool.idle]
            for pool in self._pools.values():
                pool.idle.clear()
            self._pools = {arn: pool for arn, pool in self._pools.items() if pool.active}
        for worker in idle:
            worker.stop()

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
            with SERVICE_LOCK.released():
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
        limit = self.account_concurrency if function.reserved_concurrency is None else function.reserved_concurrency
        if limit == 0:
            # A reserved concurrency of zero throttles every invocation.
            message = "Rate Exceeded."
            return WorkerResult(json.dumps(error_payload(request_id, "TooManyRequestsException", message)), True, "")
        worker = self._acquire(function, limit)
        try:
            if worker is None:
                worker = WorkerProcess(self._spec(function))
                failure = worker.start()
                if failure is not None:
                    return failure
            result = worker.invoke(event, request_id, float(function.timeout))
            # What CloudWatch Logs does with the invocation's output: EMF lines become metric data points.
            emf_metrics.record(function.account_id, function.region, worker.new_output())
            if result.errored:
                LOG.info("function error", extra={"function": function.name, "error_type": _error_type(result)})
            return result
        finally:
            self._release(function, worker)

    def _acquire(self, function: FunctionSnapshot, limit: int) -> WorkerProcess | None:
        """Wait for a free slot of the function and of the account; a warm environment, or None to start one."""
        evicted: list[WorkerProcess] = []
        with self._capacity:
            pool = self._pools.setdefault(function.arn, _Pool(function.signature))
            if pool.signature != function.signature:
                evicted.extend(pool.idle)
                pool.idle.clear()
                pool.signature = function.signature
            while pool.active >= limit or self._active >= self.account_concurrency:
                self._capacity.wait()
            pool.active += 1
            self._active += 1
            worker = pool.idle.pop() if pool.idle else None
            if worker is None:
                evicted.extend(self._make_room())
        for old in evicted:
            old.stop()
        return worker

    def _make_room(self) -> list[WorkerProcess]:
        """Idle environments (oldest functions first) to discard so that at most MAX_WARM_ENVIRONMENTS stay warm."""
        idle = sum(len(pool.idle) for pool in self._pools.values())
        excess = self._active + idle - MAX_WARM_ENVIRONMENTS
        evicted: list[WorkerProcess] = []
        for pool in self._pools.values():
            while excess > 0 and pool.idle:
                evicted.append(pool.idle.pop(0))
                excess -= 1
        return evicted

    def _release(self, function: FunctionSnapshot, worker: WorkerProcess | None) -> None:
        discard = None
        with self._capacity:
            pool = self._pools.get(function.arn)
            if pool is not None:
                pool.active -= 1
            self._active -= 1
            if worker is not None:
                if pool is not None and worker.alive and pool.signature == function.signature:
                    pool.idle.append(worker)
                else:
                    discard = worker
            self._capacity.notify_all()
        if discard is not None:
            discard.stop()

    def _spec(self, function: FunctionSnapshot) -> WorkerSpec:
        return WorkerSpec(
            task_root=self._code.task_root(function),
            opt_root=self._code.opt_root(function),
            handler=function.handler,
            environment=self._environment_for(function),
            function={
                "name": function.name,
                "arn": function.arn,
                "version": function.version,
                "memory_size": function.memory_size,
            },
        )

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
        self._event_queue.submit(self._run_async, snapshot, _as_delivered(event))

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


def _error_type(result: InvocationResult) -> str:
    return str(json.loads(result.payload).get("errorType", ""))


def _as_delivered(event: Any) -> Any:
    """The event as the function receives it: JSON, never an object shared with the caller."""
    return json.loads(json.dumps(event))


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
    account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
) -> LambdaRuntime:
    """Run Lambda functions in worker processes; handler AWS calls go to ``endpoint_url``. Reinstalling replaces."""
    global _runtime
    if not _patches.applied:
        for name, replacement in _REPLACEMENTS.items():
            _patches.set(LambdaFunction, name, replacement)
    if _runtime is not None:
        _runtime.close()
    _runtime = LambdaRuntime(endpoint_url, dispatcher, async_retry_delays, account_concurrency)
    return _runtime


def stop() -> None:
    """Give moto its own Lambda implementation back and stop every worker process."""
    global _runtime
    _patches.restore()
    if _runtime is not None:
        _runtime.close()
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
