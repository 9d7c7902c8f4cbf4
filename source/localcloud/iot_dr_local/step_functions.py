"""Step Functions as AWS runs Express workflows: StartSyncExecution, the five-minute limit, and injected failures.

moto 5.2.5 serves StartExecution only and runs an execution for as long as it takes. Here:

- ``StartSyncExecution`` runs an Express execution to its end and answers with its status, output or error, as
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartSyncExecution.html documents; a Standard
  state machine is refused with ``StateMachineTypeNotSupported``. The service lock is given up while the execution
  runs, so its tasks' calls proceed.
- An Express execution that runs longer than ``express_max_duration`` (five minutes, as on AWS:
  https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html) or than its definition's
  ``TimeoutSeconds`` ends ``TIMED_OUT``; tests shorten the limit to make an execution time out in seconds.
- ``FaultInjector.fail_executions`` makes the next executions in a region end ``FAILED`` before their first state,
  as an execution the service cannot run (``States.Runtime``) does.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidExecutionInput
from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, ExecutionStatus
from moto.stepfunctions.parser.backend.execution import SyncExecution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.responses import StepFunctionResponse

from iot_dr_local.faults import FaultInjector
from iot_dr_local.locking import SERVICE_LOCK
from iot_dr_local.patching import Patches

# "Maximum duration: 5 minutes" for Express workflows
# (https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html).
EXPRESS_MAX_DURATION_SECONDS = 300.0
# Express executions are billed by duration "rounded up to the nearest 100 milliseconds" and by memory "in 64-MB
# chunks" (https://aws.amazon.com/step-functions/pricing/); the local cloud bills the smallest chunk.
_BILLED_DURATION_STEP_MS = 100
_BILLED_MEMORY_MB = 64


class StateMachineTypeNotSupported(AWSError):
    """StartSyncExecution on a Standard state machine (HTTP 400, as the API reference lists it)."""

    TYPE = "StateMachineTypeNotSupported"
    STATUS = 400


@dataclass
class _FailedProgram:
    """An execution that fails before its first state."""

    error: str
    cause: str

    def eval(self, env: Any) -> None:
        env.set_error(ExecutionFailedEventDetails(error=self.error, cause=self.cause))


@dataclass
class _TimeLimitedProgram:
    """Runs ``program`` and ends the execution TIMED_OUT if it still runs after ``seconds``; the states it was in
    go on in the background, as the tasks of a timed-out execution do on AWS."""

    program: Any
    seconds: float

    def eval(self, env: Any) -> None:
        runner = threading.Thread(target=self.program.eval, args=(env,), daemon=True, name="express-execution")
        runner.start()
        runner.join(self.seconds)
        if runner.is_alive():
            env.set_timed_out()


class StepFunctionsExtension:
    """Installs StartSyncExecution, the Express time limit and the injected execution failures."""

    def __init__(self, faults: FaultInjector) -> None:
        self._faults = faults
        self._patches = Patches()
        self.express_max_duration = EXPRESS_MAX_DURATION_SECONDS

    def install(self) -> None:
        if self._patches.applied:
            return
        self._patches.set(StepFunctionResponse, "start_sync_execution", _start_sync_execution)
        self._patches.wrap(ExecutionWorker, "_get_evaluation_entrypoint", self._limited_entrypoint)

    def uninstall(self) -> None:
        self._patches.restore()

    def reset(self) -> None:
        self.express_max_duration = EXPRESS_MAX_DURATION_SECONDS

    def _limited_entrypoint(self, original: Any) -> Any:
        def entrypoint(worker: ExecutionWorker) -> Any:
            region = worker._evaluation_details.aws_execution_details.region
            fault = self._faults.execution_fault(region)
            if fault is not None:
                return _FailedProgram(*fault)
            program = original(worker)
            if _machine_type(worker) != "EXPRESS":
                return program
            return _TimeLimitedProgram(program, self.express_max_duration)

        return entrypoint


def _machine_type(worker: ExecutionWorker) -> str:
    # moto keeps the type the state machine was created with in ``type`` (its ``sm_type`` always says STANDARD).
    execution = getattr(worker._execution_communication, "execution", None)
    return str(getattr(getattr(execution, "state_machine", None), "type", "STANDARD"))


def _start_sync_execution(response: StepFunctionResponse) -> ActionResult:
    arn = response._get_param("stateMachineArn")
    name = response._get_param("name") or str(uuid.uuid4())
    execution_input = response._get_param("input", if_none="{}")
    backend = response.stepfunction_backend
    machine = backend.describe_state_machine(arn)  # StateMachineDoesNotExist for an unknown ARN
    if machine.type != "EXPRESS":
        raise StateMachineTypeNotSupported("This operation is not supported by this type of state machine")
    try:
        json.loads(execution_input)
    except ValueError as err:
        raise InvalidExecutionInput(f"Invalid State Machine Execution Input: '{err}'") from err
    execution = SyncExecution(
        name=name,
        sm_type=machine.sm_type,
        role_arn=machine.roleArn,
        # Express execution ARNs: arn:<partition>:states:<region>:<account>:express:<machine>:<name>:<id>.
        exec_arn=f"{arn.replace(':stateMachine:', ':express:')}:{name}:{uuid.uuid4()}",
        account_id=backend.account_id,
        region_name=backend.region_name,
        state_machine=copy.copy(machine),  # an update of the machine replaces its attributes, not this copy's
        start_date=datetime.datetime.now(tz=datetime.UTC),
        cloud_watch_logging_session=None,
        input_data=execution_input,
        activity_store={},
    )
    execution.exec_status = ExecutionStatus.RUNNING
    machine.executions.append(execution)
    # A sync execution runs in this request's thread; its tasks call the local cloud, so the lock is given up.
    with SERVICE_LOCK.released():
        execution.start()
    return ActionResult(sync_output(execution))


def sync_output(execution: SyncExecution) -> dict[str, Any]:
    """The StartSyncExecution response for an ended execution (executionArn, stateMachineArn, name, startDate,
    stopDate, status, error, cause, input, inputDetails, output, outputDetails, billingDetails)."""
    status = {ExecutionStatus.SUCCEEDED: "SUCCEEDED", ExecutionStatus.TIMED_OUT: "TIMED_OUT"}.get(
        execution.exec_status, "FAILED"
    )
    stop = execution.stop_date or datetime.datetime.now(tz=datetime.UTC)
    elapsed_ms = max(1.0, (stop - execution.start_date).total_seconds() * 1000)
    output: dict[str, Any] = {
        "executionArn": execution.execution_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "startDate": execution.start_date,
        "stopDate": stop,
        "status": status,
        "input": execution.execution_input,
        "inputDetails": {"included": True},
        "billingDetails": {
            "billedMemoryUsedInMB": _BILLED_MEMORY_MB,
            "billedDurationInMilliseconds": math.ceil(elapsed_ms / _BILLED_DURATION_STEP_MS) * _BILLED_DURATION_STEP_MS,
        },
    }
    if status == "SUCCEEDED":
        output["output"] = json.dumps(execution.output, separators=(",", ":"))
        output["outputDetails"] = {"included": True}
    elif status == "TIMED_OUT":
        output["error"] = "States.Timeout"
        output["cause"] = "The execution ran longer than its time limit."
    else:
        output["error"] = execution.error or "States.Runtime"
        output["cause"] = execution.cause or ""
    return output
