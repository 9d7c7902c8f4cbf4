"""The main stack's custom resource: checks the prerequisites, starts the deployment build, uninstalls on delete.

Create and Update check what the solution needs in the primary region (registry events and registry indexing)
with messages that say how to fix it, and start the CodeBuild project that runs the launcher. The physical id
names the deployment (stack postfix and regions) and the bucket suffix is the main stack's id, so Delete knows
what to remove without any state of its own. Delete stops running builds, removes everything in order, and
answers before the function times out; when deleting takes longer, the answer says what is still being deleted
and deleting the main stack again carries on where it stopped.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import boto3

from iot_dr.core.event_types import REGISTRY_EVENT_CONFIGURATIONS
from iot_dr.core.settings import FromEnvironment, variable
from iot_dr.deploy import custom_resource
from iot_dr.deploy.uninstall import Deployment, uninstall

if TYPE_CHECKING:
    from types_boto3_codebuild import CodeBuildClient
    from types_boto3_iot import IoTClient

LOG = logging.getLogger(__name__)

INDEXING_MODES = ("REGISTRY", "REGISTRY_AND_SHADOW")
# What the deployment build gets from this resource; buildspec.yml passes each one to the launcher.
BUILD_VARIABLES = (
    "PRIMARY_REGION",
    "SECONDARY_REGION",
    "STACK_POSTFIX",
    "BUCKET_SUFFIX",
    "CREATE_R53_HEALTH_CHECK",
    "HOSTED_ZONE_ID",
    "RECORD_NAME",
    "HEALTH_CHECK_MODE",
    "RATE_LIMIT_PER_IP",
    "ALARM_EMAIL",
)
# Attributes of the resource, which the main template's outputs read with Fn::GetAtt.
OUTPUT_KEYS = (
    "StackPostfix",
    "BucketSuffix",
    "PrimaryStackName",
    "SecondaryStackName",
    "HealthCheckerStackName",
    "GlobalDynamoDBTableName",
    "PrimaryBucket",
    "IoTEndpointPrimary",
    "IoTEndpointSecondary",
    "BuildId",
)
# Time left for answering CloudFormation after the uninstaller stops waiting (the watchdog fires 5 s before the end).
DELETE_MARGIN_SECONDS = 30.0
_PHYSICAL_ID = re.compile(r"^IoTDR:(?P<postfix>\d{14}):(?P<primary>[a-z0-9-]+):(?P<secondary>[a-z0-9-]+)$")
_BUILD_POLL_SECONDS = 5.0


class ClientFactory(Protocol):
    """``iot_dr.core.aws.client`` or a test's stand-in: ``(service, region)`` to a boto3 client of that service."""

    @overload
    def __call__(self, service: Literal["iot"], region: str) -> IoTClient: ...
    @overload
    def __call__(self, service: Literal["codebuild"], region: str) -> CodeBuildClient: ...
    @overload
    def __call__(self, service: str, region: str) -> Any: ...


class PrerequisiteError(Exception):
    """The account or the chosen regions are not ready for the solution; the message says what to do."""


class UninstallError(Exception):
    """Something the deployment created could not be removed, or is still being removed."""


@dataclass(frozen=True)
class LaunchSettings(FromEnvironment):
    """The function's configuration: the launcher project's name (``CODEBUILD_PROJECT``)."""

    project_name: str = variable("CODEBUILD_PROJECT")


def physical_id(deployment: Deployment) -> str:
    """The custom resource's physical id, ``IoTDR:<postfix>:<primary>:<secondary>``: stable across updates of the
    same deployment, so CloudFormation sees no replacement
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)."""
    return f"IoTDR:{deployment.stack_postfix}:{deployment.primary_region}:{deployment.secondary_region}"


def deployment_of(resource_id: str, stack_id: str) -> Deployment | None:
    """The deployment a physical id names; None for the id of a Create that never got that far."""
    match = _PHYSICAL_ID.match(resource_id)
    if match is None:
        return None
    return Deployment(match["primary"], match["secondary"], match["postfix"], bucket_suffix(stack_id))


def bucket_suffix(stack_id: str) -> str:
    """The main stack's UUID: unique, known to the template (its roles are scoped to the buckets), and stable."""
    return stack_id.rsplit("/", 1)[-1]


def check_prerequisites(primary: str, secondary: str, client: ClientFactory) -> None:
    """Raise ``PrerequisiteError`` listing everything to fix, each with the command that fixes it."""
    if primary == secondary:
        raise PrerequisiteError("PrimaryRegion and SecondaryRegion must differ.")
    session = boto3.session.Session()
    problems = [
        f"{label} is not offered in {region}; choose another region."
        for service, label in (("iot", "AWS IoT Core"), ("dynamodb", "Amazon DynamoDB"))
        for region in (primary, secondary)
        if region not in session.get_available_regions(service)
    ]
    if problems:
        raise PrerequisiteError(" ".join(problems))
    iot = client("iot", primary)
    configurations = iot.describe_event_configurations()["eventConfigurations"]
    disabled = [name for name in REGISTRY_EVENT_CONFIGURATIONS if not configurations.get(name, {}).get("Enabled")]
    if disabled:
        wanted = json.dumps({name: {"Enabled": True} for name in REGISTRY_EVENT_CONFIGURATIONS}, separators=(",", ":"))
        problems.append(
            f"Registry events {', '.join(disabled)} are turned off in {primary}; the solution replicates what they "
            f"report. Turn them on: aws iot update-event-configurations --region {primary} "
            f"--event-configurations '{wanted}'"
        )
    indexing = iot.get_indexing_configuration().get("thingIndexingConfiguration", {})
    mode = indexing.get("thingIndexingMode", "OFF")
    if mode not in INDEXING_MODES:
        problems.append(
            f"Registry indexing is {mode} in {primary}; the reconciliation searches the fleet index. Turn it on: "
            f"aws iot update-indexing-configuration --region {primary} "
            "--thing-indexing-configuration thingIndexingMode=REGISTRY_AND_SHADOW"
        )
    if problems:
        raise PrerequisiteError(" ".join(problems))


def start_build(codebuild: CodeBuildClient, project: str, deployment: Deployment, properties: Mapping[str, Any]) -> str:
    """Start the launcher in CodeBuild with this deployment's names; returns the build id."""
    values = (
        deployment.primary_region,
        deployment.secondary_region,
        deployment.stack_postfix,
        deployment.bucket_suffix,
        str(properties.get("CreateR53HealthCheck", "yes")),
        str(properties.get("HostedZoneId", "")),
        str(properties.get("RecordName", "")),
        str(properties.get("HealthCheckMode", "https-secret")),
        str(properties.get("RateLimitPerIp", "100")),
        str(properties.get("AlarmEmail", "")),
    )
    environment = dict(zip(BUILD_VARIABLES, values, strict=True))
    build = codebuild.start_build(
        projectName=project,
        environmentVariablesOverride=[
            {"name": name, "value": value, "type": "PLAINTEXT"} for name, value in environment.items()
        ],
    )["build"]
    LOG.info("deployment build started", extra={"build_id": build["id"], "stack_postfix": deployment.stack_postfix})
    return str(build["id"])


def stop_builds(codebuild: CodeBuildClient, project: str, deadline: float) -> list[str]:
    """Stop this project's running builds and wait until they have stopped; returns those still running."""
    ids = codebuild.list_builds_for_project(projectName=project, sortOrder="DESCENDING").get("ids", [])[:100]
    if not ids:
        return []
    running = [b["id"] for b in codebuild.batch_get_builds(ids=ids)["builds"] if b["buildStatus"] == "IN_PROGRESS"]
    for build_id in running:
        LOG.info("stopping build", extra={"build_id": build_id})
        codebuild.stop_build(id=build_id)
    while running and time.monotonic() < deadline:
        time.sleep(_BUILD_POLL_SECONDS)
        builds = codebuild.batch_get_builds(ids=running)["builds"]
        running = [b["id"] for b in builds if b["buildStatus"] == "IN_PROGRESS"]
    return running


def _outputs(deployment: Deployment, client: ClientFactory, build_id: str) -> dict[str, str]:
    endpoints = {
        region: str(client("iot", region).describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"])
        for region in deployment.regions
    }
    return {
        "StackPostfix": deployment.stack_postfix,
        "BucketSuffix": deployment.bucket_suffix,
        "PrimaryStackName": deployment.primary_stack,
        "SecondaryStackName": deployment.secondary_stack,
        "HealthCheckerStackName": deployment.health_checker_stack,
        "GlobalDynamoDBTableName": deployment.table_name,
        "PrimaryBucket": deployment.bucket(deployment.primary_region),
        "IoTEndpointPrimary": endpoints[deployment.primary_region],
        "IoTEndpointSecondary": endpoints[deployment.secondary_region],
        "BuildId": build_id,
    }


def handle_event(
    event: Mapping[str, Any],
    context: custom_resource.LambdaContext,
    settings: LaunchSettings,
    client: ClientFactory,
    home_region: str,
    send: custom_resource.Sender = custom_resource.put_response,
) -> None:
    """The ``Custom::LaunchSolution`` resource (properties PrimaryRegion, SecondaryRegion, CreateR53HealthCheck,
    HostedZoneId, RecordName, HealthCheckMode, RateLimitPerIp, AlarmEmail); answers CloudFormation exactly once."""
    custom_resource.require_request(event)
    suffix = bucket_suffix(str(event["StackId"]))
    new_deployment: dict[str, Deployment] = {}

    def fresh(properties: Mapping[str, Any]) -> Deployment:
        # One postfix per request, so a failed Create's physical id still names what its build may have made.
        if "deployment" not in new_deployment:
            new_deployment["deployment"] = Deployment(
                str(properties["PrimaryRegion"]), str(properties["SecondaryRegion"]), time.strftime("%Y%m%d%H%M%S"),
                suffix,
            )  # fmt: skip
        return new_deployment["deployment"]

    def launch(request: Mapping[str, Any], deployment: Deployment) -> custom_resource.Outcome:
        properties = request["ResourceProperties"]
        check_prerequisites(deployment.primary_region, deployment.secondary_region, client)
        build_id = start_build(client("codebuild", home_region), settings.project_name, deployment, properties)
        return custom_resource.Outcome(physical_id(deployment), _outputs(deployment, client, build_id))

    def create(request: Mapping[str, Any]) -> custom_resource.Outcome:
        return launch(request, fresh(request["ResourceProperties"]))

    def update(request: Mapping[str, Any]) -> custom_resource.Outcome:
        current = deployment_of(str(request["PhysicalResourceId"]), str(request["StackId"]))
        if current is None:
            return create(request)
        properties = request["ResourceProperties"]
        if (properties["PrimaryRegion"], properties["SecondaryRegion"]) != current.regions:
            raise PrerequisiteError(
                f"This deployment runs in {current.primary_region} and {current.secondary_region}; its regions "
                "cannot change. Delete this stack and launch a new one for other regions."
            )
        return launch(request, current)

    def delete(request: Mapping[str, Any]) -> custom_resource.Outcome:
        resource_id = str(request["PhysicalResourceId"])
        deployment = deployment_of(resource_id, str(request["StackId"]))
        if deployment is None:
            return custom_resource.Outcome(resource_id)
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - DELETE_MARGIN_SECONDS
        still_running = stop_builds(client("codebuild", home_region), settings.project_name, deadline)
        if still_running:
            raise UninstallError(f"builds {', '.join(still_running)} are still stopping; delete the stack again")
        report = uninstall(deployment, LOG.info, deadline=deadline)
        if report.failures:
            raise UninstallError(report.summary())
        if report.pending:
            raise UninstallError(
                f"{report.summary()}. Deletion goes on in the background; delete this stack again to finish "
                "(it continues where it stopped)."
            )
        LOG.info("deployment removed", extra={"stack_postfix": deployment.stack_postfix, "removed": report.deleted})
        return custom_resource.Outcome(resource_id)

    def failed_id(request: Mapping[str, Any]) -> str:
        properties = request.get("ResourceProperties") or {}
        if "PrimaryRegion" in properties and "SecondaryRegion" in properties:
            return physical_id(fresh(properties))
        return f"{request.get('LogicalResourceId')}-not-launched"

    custom_resource.run(
        event, context, create=create, update=update, delete=delete, physical_id_on_failure=failed_id, send=send
    )
