"""AWS IoT bulk registration, which moto lacks: StartThingRegistrationTask, DescribeThingRegistrationTask,
ListThingRegistrationTasks and ListThingRegistrationTaskReports.

A task reads its newline-delimited JSON input file from S3 (the role must exist), applies the provisioning template
to each line in the background, as AWS does, by calling the IoT API of the local cloud (so registry events,
CloudTrail records and the replication see every created thing, certificate and attachment), and writes a results
and an errors file to a local reports bucket, linked by presigned URLs. Only one task runs at a time per account.
The task's status, counts and report links change together once the reports are written; any failure ends it
``Failed`` with its reason.

Template subset: ``Parameters`` with defaults; resources ``AWS::IoT::Thing`` (ThingName, AttributePayload,
ThingTypeName, ThingGroups), ``AWS::IoT::Certificate`` (CertificateSigningRequest, Status) and ``AWS::IoT::Policy``
(PolicyName of an existing policy, or PolicyDocument); values may be ``{"Ref": parameter}`` or ``Fn::Join``.
https://docs.aws.amazon.com/iot/latest/developerguide/bulk-provisioning.html and
https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html

Assumption (AWS documents no schema for the report lines): a results line is ``{"lineNumber", "offset",
"response": {"CertificatePem", "ResourceArns": {"thing", "certificate", "policy"}}}`` as the archived tools read
them; an errors line is ``{"lineNumber", "offset", "errorCode", "errorMessage"}``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from moto.core.responses import ActionResult
from moto.iam.exceptions import NotFoundException as IAMNotFoundException
from moto.iam.models import iam_backends
from moto.iot.exceptions import InvalidRequestException, ResourceNotFoundException
from moto.iot.responses import IoTResponse

from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.patching import Patches

LOG = logging.getLogger(__name__)
REPORTS_BUCKET = "iot-dr-local-registration-reports"
_patches = Patches()
_lock = threading.Lock()


@dataclass
class RegistrationTask:
    task_id: str
    account: str
    region: str
    template_body: str
    bucket: str
    key: str
    role_arn: str
    created: datetime.datetime
    status: str = "InProgress"
    message: str = ""
    success_count: int = 0
    failure_count: int = 0
    progress: int = 0
    modified: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    reports: dict[str, list[str]] = field(default_factory=lambda: {"RESULTS": [], "ERRORS": []})

    def describe(self) -> dict[str, Any]:
        return {
            "taskId": self.task_id,
            "creationDate": self.created.timestamp(),
            "lastModifiedDate": self.modified.timestamp(),
            "templateBody": self.template_body,
            "inputFileBucket": self.bucket,
            "inputFileKey": self.key,
            "roleArn": self.role_arn,
            "status": self.status,
            "message": self.message,
            "successCount": self.success_count,
            "failureCount": self.failure_count,
            "percentageProgress": self.progress,
        }


class _State:
    """Where the tasks call the local cloud, and every task by ID (process-wide, like moto's backends)."""

    endpoint: ClassVar[str] = ""
    dispatcher: ClassVar[Dispatcher | None] = None
    tasks: ClassVar[dict[str, RegistrationTask]] = {}


def _client(service: str, region: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing"
    )
    config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
    return session.client(service, region_name=region, endpoint_url=_State.endpoint, config=config)


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if "Ref" in value:
            name = value["Ref"]
            if name not in parameters:
                raise ValueError(f"parameter {name} has no value")
            return parameters[name]
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(_resolve(part, parameters)) for part in parts)
        return {k: _resolve(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, parameters) for v in value]
    return value


def register_line(iot: Any, template: dict[str, Any], line: Any) -> dict[str, Any]:
    """Apply ``template`` with the parameters of one input line (its JSON value); returns the results line's
    ``response``.

    Raises ``ValueError`` when the line is not a JSON object or a parameter has no value, ``KeyError`` when a
    resource lacks a property, ``ClientError``/``ParamValidationError`` when the IoT API rejects a value."""
    if not isinstance(line, dict):
        raise ValueError("the line is not a JSON object of parameter values")
    parameters = {
        name: spec["Default"] for name, spec in template.get("Parameters", {}).items() if "Default" in spec
    } | line
    resources = {name: _resolve(spec, parameters) for name, spec in template.get("Resources", {}).items()}
    by_type = {spec["Type"]: spec.get("Properties", {}) for spec in resources.values()}
    response: dict[str, Any] = {"ResourceArns": {}}
    certificate_arn = None
    certificate = by_type.get("AWS::IoT::Certificate")
    if certificate is not None:
        created = iot.create_certificate_from_csr(
            certificateSigningRequest=certificate["CertificateSigningRequest"],
            setAsActive=certificate.get("Status", "INACTIVE") == "ACTIVE",
        )
        certificate_arn = created["certificateArn"]
        response["CertificatePem"] = created["certificatePem"]
        response["ResourceArns"]["certificate"] = certificate_arn
    policy = by_type.get("AWS::IoT::Policy")
    if policy is not None:
        if "PolicyName" in policy:
            policy_name = iot.get_policy(policyName=policy["PolicyName"])["policyName"]
        else:
            document = (
                json.dumps(policy["PolicyDocument"])
                if not isinstance(policy["PolicyDocument"], str)
                else policy["PolicyDocument"]
            )
            policy_name = hashlib.sha256(document.encode()).hexdigest()
            try:
                iot.create_policy(policyName=policy_name, policyDocument=document)
            except ClientError as err:
                if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
        response["ResourceArns"]["policy"] = iot.get_policy(policyName=policy_name)["policyArn"]
        if certificate_arn:
            iot.attach_policy(policyName=policy_name, target=certificate_arn)
    thing = by_type.get("AWS::IoT::Thing")
    if thing is not None:
        request: dict[str, Any] = {"thingName": thing["ThingName"]}
        if thing.get("AttributePayload"):
            request["attributePayload"] = {"attributes": thing["AttributePayload"]}
        if thing.get("ThingTypeName"):
            request["thingTypeName"] = thing["ThingTypeName"]
        response["ResourceArns"]["thing"] = iot.create_thing(**request)["thingArn"]
        for group in thing.get("ThingGroups", []):
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing["ThingName"])
        if certificate_arn:
            iot.attach_thing_principal(thingName=thing["ThingName"], principal=certificate_arn)
    return response


def _run(task: RegistrationTask) -> None:
    """Register every line of the input file, write the reports, then publish the outcome all at once.

    A client that sees the task end (DescribeThingRegistrationTask) must find every line in the reports
    (ListThingRegistrationTaskReports): the status, the counts and the report links change together, after the
    reports are written. Any failure ends the task ``Failed`` with its reason; it never stays ``InProgress``.
    """
    iot, s3 = _client("iot", task.region), _client("s3", task.region)
    results: list[str] = []
    errors: list[str] = []
    status, message = "Completed", ""
    try:
        _register_lines(iot, s3, task, results, errors)
    except Exception as err:  # whatever stops the run is the task's failure, as AWS reports it, never a silent end
        LOG.exception("thing registration task failed", extra={"task_id": task.task_id})
        status, message = "Failed", str(err)
    try:
        links = _write_reports(s3, task, results, errors)
    except Exception as err:  # without its reports a task cannot be Completed: its lines would vanish
        LOG.exception("thing registration task reports not written", extra={"task_id": task.task_id})
        status, message, links = "Failed", "; ".join(filter(None, [message, f"reports not written: {err}"])), {}
    with _lock:
        task.status, task.message = status, message
        for kind, urls in links.items():
            task.reports[kind].extend(urls)
        task.modified = datetime.datetime.now(datetime.UTC)


def _register_lines(iot: Any, s3: Any, task: RegistrationTask, results: list[str], errors: list[str]) -> None:
    """Apply the template to each line of the input file: its results line goes to ``results``, or its errors line
    to ``errors`` (a line the IoT API or the template rejects fails alone, as in AWS)."""
    template = json.loads(task.template_body)
    body = s3.get_object(Bucket=task.bucket, Key=task.key)["Body"].read().decode()
    lines = body.splitlines(keepends=True)
    offset = 0
    for number, text in enumerate(lines):
        line_offset, offset = offset, offset + len(text.encode())
        if not text.strip():
            continue
        try:
            response = register_line(iot, template, json.loads(text))
        except (ClientError, ParamValidationError, ValueError, KeyError, TypeError) as err:
            code = err.response["Error"]["Code"] if isinstance(err, ClientError) else "InvalidRequestException"
            errors.append(
                json.dumps({"lineNumber": number, "offset": line_offset, "errorCode": code, "errorMessage": str(err)})
            )
            with _lock:
                task.failure_count += 1
        else:
            results.append(json.dumps({"lineNumber": number, "offset": line_offset, "response": response}))
            with _lock:
                task.success_count += 1
        with _lock:
            task.progress = int(100 * (number + 1) / len(lines))


def _write_reports(s3: Any, task: RegistrationTask, results: list[str], errors: list[str]) -> dict[str, list[str]]:
    """Put the non-empty reports in the local reports bucket; returns presigned links by report type."""
    bucket = f"{REPORTS_BUCKET}-{task.account}-{task.region}"
    try:
        s3.create_bucket(
            Bucket=bucket,
            **(
                {} if task.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": task.region}}
            ),
        )
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    links: dict[str, list[str]] = {}
    for kind, lines in (("RESULTS", results), ("ERRORS", errors)):
        if not lines:
            continue
        key = f"{task.task_id}/{kind.lower()}.json"
        s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode() + b"\n")
        links[kind] = [s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)]
    return links


def _running(account: str) -> bool:
    return any(t.account == account and t.status == "InProgress" for t in _State.tasks.values())


def start_thing_registration_task(self: IoTResponse) -> ActionResult:
    template = self._get_param("templateBody")
    bucket, key, role_arn = (
        self._get_param("inputFileBucket"),
        self._get_param("inputFileKey"),
        self._get_param("roleArn"),
    )
    try:
        json.loads(template)
    except (TypeError, ValueError) as err:
        raise InvalidRequestException("templateBody is not valid JSON") from err
    # This runs inside moto's request lock: read IAM's backend directly (a request to the server would wait forever).
    role_name = str(role_arn).rsplit("/", 1)[-1]
    try:
        iam_backends[self.current_account][self.partition].get_role(role_name)
    except IAMNotFoundException as err:
        raise InvalidRequestException(f"IoT cannot assume the role {role_arn}") from err
    with _lock:
        if _running(self.current_account):
            raise InvalidRequestException("only one bulk registration task can run at a time per account")
        task = RegistrationTask(
            str(uuid.uuid4()), self.current_account, self.region, template, bucket, key, role_arn,
            datetime.datetime.now(datetime.UTC),
        )  # fmt: skip
        _State.tasks[task.task_id] = task
    assert _State.dispatcher is not None
    _State.dispatcher.submit(_run, task)
    return ActionResult({"taskId": task.task_id})


def _task(response: IoTResponse) -> RegistrationTask:
    task = _State.tasks.get(response._get_param("taskId"))
    if task is None or task.account != response.current_account or task.region != response.region:
        raise ResourceNotFoundException("no such thing registration task")
    return task


def describe_thing_registration_task(self: IoTResponse) -> ActionResult:
    task = _task(self)
    with _lock:
        return ActionResult(task.describe())


def list_thing_registration_tasks(self: IoTResponse) -> ActionResult:
    status = self._get_param("status")
    ids = [
        t.task_id
        for t in _State.tasks.values()
        if t.account == self.current_account and t.region == self.region and (not status or t.status == status)
    ]
    return ActionResult({"taskIds": ids})


def list_thing_registration_task_reports(self: IoTResponse) -> ActionResult:
    task = _task(self)
    kind = self._get_param("reportType")
    if kind not in ("RESULTS", "ERRORS"):
        raise InvalidRequestException("reportType must be RESULTS or ERRORS")
    with _lock:
        links = list(task.reports[kind])
    return ActionResult({"resourceLinks": links, "reportType": kind})


_OPERATIONS = {
    "start_thing_registration_task": start_thing_registration_task,
    "describe_thing_registration_task": describe_thing_registration_task,
    "list_thing_registration_tasks": list_thing_registration_tasks,
    "list_thing_registration_task_reports": list_thing_registration_task_reports,
}


def install(endpoint: str, dispatcher: Dispatcher) -> None:
    _State.endpoint, _State.dispatcher = endpoint, dispatcher
    if not _patches.applied:
        for name, operation in _OPERATIONS.items():
            _patches.set(IoTResponse, name, operation)


def reset() -> None:
    with _lock:
        _State.tasks.clear()


def uninstall() -> None:
    reset()
    _patches.restore()
