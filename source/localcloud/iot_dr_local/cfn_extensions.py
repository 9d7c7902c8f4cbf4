"""CloudFormation as the project's templates need it: no skipped resources, no dropped properties.

moto reports CREATE_COMPLETE for a stack even when it silently skipped a resource type it does not know,
and several of its resource types drop properties. Here AWS::IoT::TopicRule, AWS::DynamoDB::GlobalTable,
AWS::SQS::QueuePolicy, AWS::SecretsManager::Secret and AWS::ApiGateway::Stage are created for real (and more
types in ``cfn_alarms``, ``cfn_waf`` and ``cfn_iot_identity``), the dropped properties are applied, and a stack
holding any other unknown type fails with CREATE_FAILED naming the types, so a gap in the local cloud is never
hidden.

Custom resources work as in CloudFormation: the function behind ``ServiceToken`` gets Create, Update and
Delete requests whose ``ResponseURL`` is a pre-signed S3 PUT URL, and the one response it uploads there
decides the outcome (no response or two responses fail the resource). Secrets Manager dynamic references
(``{{resolve:secretsmanager:...}}``) are resolved, and a stack whose deletion fails ends DELETE_FAILED
with the reason instead of vanishing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import boto3
from moto.apigateway.models import RestAPI, apigateway_backends
from moto.awslambda.models import LambdaFunction, LayerVersion, lambda_backends
from moto.cloudformation import parsing
from moto.cloudformation.custom_model import CustomModel
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException, ValidationError
from moto.cloudformation.models import CloudFormationBackend, Event, Stack
from moto.cloudformation.parsing import OutputMap, get_model_map, get_name_type_map
from moto.core.common_models import CloudFormationModel
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.iot.exceptions import ResourceNotFoundException
from moto.iot.models import FakePolicy, FakeThing, iot_backends
from moto.kms.models import Key
from moto.route53.models import HealthCheck, route53_backends
from moto.s3.models import s3_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.responses import get_backend as stepfunctions_backend
from moto.stepfunctions.utils import cfn_to_api_tags

from iot_dr_local import lambda_runtime
from iot_dr_local.cfn_alarms import MetricAlarm
from iot_dr_local.cfn_iot_identity import Certificate, PolicyPrincipalAttachment, ThingPrincipalAttachment
from iot_dr_local.cfn_resource import AddedResource, UpdatableResource
from iot_dr_local.cfn_waf import WebAcl, WebAclAssociation
from iot_dr_local.global_tables import GlobalTableReplicator
from iot_dr_local.patching import Patches

LOG = logging.getLogger(__name__)

# Maps whose keys are user data, so their contents keep their spelling.
_VERBATIM_MAPS = frozenset({"ClientProperties"})
_BOOLEAN_PROPERTIES = frozenset({"RuleDisabled", "UseBase64", "BatchMode", "IncludeExecutionData"})

_patches = Patches()
_replicator: GlobalTableReplicator | None = None


def api_shape(value: Any) -> Any:
    """CloudFormation property casing (``TopicRulePayload.Actions``) to the service API's (``actions``)."""
    if isinstance(value, list):
        return [api_shape(element) for element in value]
    if not isinstance(value, dict):
        return value
    converted: dict[str, Any] = {}
    for key, element in value.items():
        name = key[:1].lower() + key[1:]
        if key in _VERBATIM_MAPS:
            converted[name] = element
        elif key in _BOOLEAN_PROPERTIES and isinstance(element, str):
            converted[name] = element.lower() == "true"
        else:
            converted[name] = api_shape(element)
    return converted


@dataclass(eq=False)
class TopicRule(UpdatableResource, CloudFormationModel):
    """AWS::IoT::TopicRule, created in the stack region's IoT backend."""

    TYPE = "AWS::IoT::TopicRule"
    NAME_PROPERTY = "RuleName"
    REF = "name"
    ATTRIBUTES = MappingProxyType({"Arn": "arn"})

    name: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:rule/{self.name}"

    @staticmethod
    def _rule(payload: dict[str, Any]) -> dict[str, Any]:
        rule = api_shape(payload)
        return {
            "sql": rule["sql"],
            "description": rule.get("description"),
            "rule_disabled": rule.get("ruleDisabled", False),
            "actions": rule.get("actions", []),
            "error_action": rule.get("errorAction"),
            "aws_iot_sql_version": rule.get("awsIotSqlVersion"),
        }

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> TopicRule:
        # Generated names contain dashes, which rule names may not.
        rule_name = re.sub(r"[^a-zA-Z0-9_]", "_", name)
        rule = cls._rule(properties["TopicRulePayload"])
        iot_backends[account_id][region].create_topic_rule(rule_name=rule_name, **rule)
        return cls(account_id, region, rule_name)

    def updated(self, account_id: str, region: str, new_name: str, properties: dict[str, Any]) -> TopicRule:
        self.delete(account_id, region)
        return self.from_properties(account_id, region, new_name, properties)

    def delete(self, account_id: str, region_name: str) -> None:
        iot_backends[account_id][region_name].delete_topic_rule(self.name)


@dataclass(eq=False)
class GlobalTable(UpdatableResource, CloudFormationModel):
    """AWS::DynamoDB::GlobalTable: one table per replica region, kept in step by the replicator."""

    TYPE = "AWS::DynamoDB::GlobalTable"
    NAME_PROPERTY = "TableName"
    REF = "name"

    name: str
    regions: list[str]
    table_id: str = field(init=False, default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "StreamArn", "TableId")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        description = dynamodb_backends[self.account_id][self.region].get_table(self.name).describe()
        if attribute_name == "Arn":
            return str(description["TableDescription"]["TableArn"])
        if attribute_name == "StreamArn" and "LatestStreamArn" in description["TableDescription"]:
            return str(description["TableDescription"]["LatestStreamArn"])
        if attribute_name == "TableId":
            return self.table_id
        raise UnformattedGetAttTemplateException()

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> GlobalTable:
        replicas = properties["Replicas"]
        regions = [replica["Region"] for replica in replicas]
        if region not in regions:
            raise ValidationError(message=f"Replicas of a global table must include the stack region {region}")
        if properties.get("BillingMode") != "PAY_PER_REQUEST":
            raise ValidationError(message="The local cloud supports only PAY_PER_REQUEST global tables")
        if len(replicas) > 1 and "StreamSpecification" not in properties:
            raise ValidationError(message="StreamSpecification is required for a global table with several replicas")
        for replica in replicas:
            _create_replica_table(account_id, name, properties, replica)
        _current_replicator().register_group(account_id, name, regions)
        return cls(account_id, region, name, regions)

    def updated(self, account_id: str, region: str, new_name: str, properties: dict[str, Any]) -> GlobalTable:
        raise ValidationError(message="The local cloud cannot update an AWS::DynamoDB::GlobalTable in place")

    def delete(self, account_id: str, region_name: str) -> None:
        for region in self.regions:
            backend = dynamodb_backends[account_id][region]
            if self.name in backend.tables:
                backend.delete_table(self.name)


@dataclass(eq=False)
class QueuePolicy(UpdatableResource, CloudFormationModel):
    """AWS::SQS::QueuePolicy: the policy document set as the ``Policy`` attribute of each listed queue."""

    TYPE = "AWS::SQS::QueuePolicy"
    REF = "policy_id"

    policy_id: str
    queue_urls: list[str]

    def _set_policy(self, policy: str) -> None:
        backend = sqs_backends[self.account_id][self.region]
        for url in self.queue_urls:
            name = url.rstrip("/").rsplit("/", 1)[-1]
            # On stack deletion the queue may already be gone, and with it the policy.
            if policy or name in backend.queues:
                backend.set_queue_attributes(name, {"Policy": policy})

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> QueuePolicy:
        policy = cls(account_id, region, name, list(properties["Queues"]))
        policy._set_policy(json.dumps(properties["PolicyDocument"]))
        return policy

    def updated(self, account_id: str, region: str, new_name: str, properties: dict[str, Any]) -> QueuePolicy:
        self.delete(account_id, region)
        return self.from_properties(account_id, region, self.policy_id, properties)

    def delete(self, account_id: str, region_name: str) -> None:
        self._set_policy("")


@dataclass(eq=False)
class Secret(AddedResource, CloudFormationModel):
    """AWS::SecretsManager::Secret: Ref is the ARN; GenerateSecretString is honoured; deletion is immediate."""

    TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"
    REF = "arn"

    arn: str

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> Secret:
        backend = secretsmanager_backends[account_id][region]
        created = json.loads(
            backend.create_secret(
                name=properties.get("Name", name),
                secret_string=properties.get("SecretString") or _generated_secret(backend, properties),
                secret_binary=None,
                description=properties.get("Description"),
                tags=properties.get("Tags"),
                kms_key_id=properties.get("KmsKeyId"),
                client_request_token=None,
                replica_regions=[],
                force_overwrite=False,
            )
        )
        return cls(account_id, region, created["ARN"])

    def delete(self, account_id: str, region_name: str) -> None:
        secretsmanager_backends[account_id][region_name].delete_secret(self.arn, None, True)


def _generated_secret(backend: Any, properties: dict[str, Any]) -> str:
    options = properties.get("GenerateSecretString") or {}
    password = json.loads(
        backend.get_random_password(
            password_length=int(options.get("PasswordLength", 32)),
            exclude_characters=options.get("ExcludeCharacters", ""),
            exclude_numbers=_true(options.get("ExcludeNumbers", False)),
            exclude_punctuation=_true(options.get("ExcludePunctuation", False)),
            exclude_uppercase=_true(options.get("ExcludeUppercase", False)),
            exclude_lowercase=_true(options.get("ExcludeLowercase", False)),
            include_space=_true(options.get("IncludeSpace", False)),
            require_each_included_type=_true(options.get("RequireEachIncludedType", True)),
        )
    )["RandomPassword"]
    if "GenerateStringKey" in options:
        template = json.loads(options.get("SecretStringTemplate", "{}"))
        return json.dumps({**template, options["GenerateStringKey"]: password})
    return str(password)


@dataclass(eq=False)
class ApiStage(AddedResource, CloudFormationModel):
    """AWS::ApiGateway::Stage: a stage of a deployment; Ref is the stage name."""

    TYPE = "AWS::ApiGateway::Stage"
    NAME_PROPERTY = "StageName"
    REF = "name"

    rest_api_id: str
    name: str

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> ApiStage:
        stage_name = properties.get("StageName", name)
        apigateway_backends[account_id][region].create_stage(
            function_id=properties["RestApiId"],
            stage_name=stage_name,
            deploymentId=properties["DeploymentId"],
            variables=properties.get("Variables"),
            description=properties.get("Description", ""),
            tags={tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])},
            tracing_enabled=properties.get("TracingEnabled"),
        )
        return cls(account_id, region, properties["RestApiId"], stage_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigateway_backends[account_id][region_name]
        # Deleting the API deletes its stages; the stack may delete the API first.
        if self.rest_api_id in backend.apis:
            backend.delete_stage(self.rest_api_id, self.name)


class CustomResourceFailed(ValidationError):
    """The custom resource answered FAILED, answered more than once, or never answered."""


def _response_bucket(account_id: str, region: str) -> str:
    """CloudFormation's regional response bucket, versioned so a second answer is seen, not overwritten."""
    name = f"cloudformation-custom-resource-response-{region.replace('-', '')}"
    backend = s3_backends[account_id]["aws"]
    if name not in backend.buckets:
        backend.create_bucket(name, region)
        backend.put_bucket_versioning(name, "Enabled")
    return name


def send_custom_resource_request(account_id: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
    """Invoke the resource's function with ``request`` and a pre-signed response URL; return its one answer.

    The local runtime runs the function to its end, so every answer it will ever give is there when it returns.
    """
    bucket = _response_bucket(account_id, region)
    key = f"{request['StackId']}|{request['LogicalResourceId']}|{request['RequestId']}"
    s3 = boto3.session.Session().client("s3", region_name=region, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=7200)
    function = lambda_backends[account_id][region].get_function(request["ServiceToken"])
    try:
        lambda_runtime.invoke_function(account_id, region, function.function_arn, {**request, "ResponseURL": url})
    except lambda_runtime.LambdaInvocationError as err:
        LOG.info("custom resource function failed", extra={"error": str(err)})
    answers = s3_backends[account_id]["aws"].get_bucket(bucket).keys.getlist(key, [])
    name = request["LogicalResourceId"]
    if len(answers) != 1:
        raise CustomResourceFailed(message=f"{name} answered {request['RequestType']} {len(answers)} times")
    response: dict[str, Any] = json.loads(answers[0].value)
    if response.get("Status") != "SUCCESS":
        raise CustomResourceFailed(message=f"{name} failed: {response.get('Reason', 'no reason given')}")
    return response


def _custom_create(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> CustomModel:
    properties = cloudformation_json["Properties"]
    request = {
        "RequestType": "Create",
        "ServiceToken": properties["ServiceToken"],
        "StackId": kwargs["StackId"],
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": kwargs["LogicalId"],
        "ResourceType": kwargs["ResourceType"],
        "ResourceProperties": properties,
    }
    response = send_custom_resource_request(account_id, region_name, request)
    resource = CustomModel(region_name, request["RequestId"], kwargs["LogicalId"], response["PhysicalResourceId"])
    resource.set_data(response.get("Data") or {})
    resource.request = request  # type: ignore[attr-defined]
    return resource


def _custom_update(
    cls: type,
    original_resource: CustomModel,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> CustomModel:
    previous = original_resource.request  # type: ignore[attr-defined]
    request = {
        **previous,
        "RequestType": "Update",
        "RequestId": str(uuid.uuid4()),
        "PhysicalResourceId": original_resource.physical_resource_id,
        "ResourceProperties": cloudformation_json["Properties"],
        "OldResourceProperties": previous["ResourceProperties"],
    }
    response = send_custom_resource_request(account_id, region_name, request)
    logical_id = previous["LogicalResourceId"]
    resource = CustomModel(region_name, request["RequestId"], logical_id, response["PhysicalResourceId"])
    resource.set_data(response.get("Data") or {})
    resource.request = {**request, "RequestType": "Create"}  # type: ignore[attr-defined]
    if resource.physical_resource_id != original_resource.physical_resource_id:
        # A new physical id replaces the resource: CloudFormation then deletes the old one.
        _custom_delete(original_resource, account_id, region_name)
    return resource


def _custom_delete(resource: CustomModel, account_id: str, region_name: str) -> None:
    request = {
        **resource.request,  # type: ignore[attr-defined]
        "RequestType": "Delete",
        "RequestId": str(uuid.uuid4()),
        "PhysicalResourceId": resource.physical_resource_id,
    }
    request.pop("OldResourceProperties", None)
    send_custom_resource_request(account_id, region_name, request)


def _resolve_dynamic_references(value: Any) -> Any:
    """``{{resolve:secretsmanager:<id>:SecretString:<key>}}`` inside strings, as CloudFormation resolves them."""
    if not isinstance(value, str) or "{{resolve:secretsmanager:" not in value:
        return value

    def secret(match: re.Match[str]) -> str:
        secret_id, _, json_key = match.group(1).partition(":SecretString:")
        arn_parts = secret_id.split(":")
        account_id, region = arn_parts[4], arn_parts[3]
        text = secretsmanager_backends[account_id][region].get_secret_value(secret_id, None, "AWSCURRENT")[
            "SecretString"
        ]
        return str(json.loads(text)[json_key]) if json_key else str(text)

    return re.sub(r"\{\{resolve:secretsmanager:(arn:[^}]*?)\}\}", secret, value)


def _clean_json(resource_json: Any, resources_map: Any) -> Any:
    return _resolve_dynamic_references(_patches.original(parsing, "clean_json")(resource_json, resources_map))


def _delete_layer_version(layer: LayerVersion, account_id: str, region_name: str) -> None:
    lambda_backends[account_id][region_name].delete_layer_version(layer.name, str(layer.version))


def _delete_rest_api(api: RestAPI, account_id: str, region_name: str) -> None:
    apigateway_backends[account_id][region_name].delete_rest_api(api.id)


def _delete_health_check(check: HealthCheck, account_id: str, region_name: str) -> None:
    route53_backends[account_id]["aws"].delete_health_check(check.id)


def _references(value: Any) -> set[str]:
    """Logical ids a resource definition refers to (Ref, Fn::GetAtt, Fn::Sub, DependsOn)."""
    found: set[str] = set()
    if isinstance(value, list):
        for element in value:
            found |= _references(element)
    elif isinstance(value, dict):
        for key, element in value.items():
            if key in ("Ref", "DependsOn"):
                found |= set(element if isinstance(element, list) else [element])
            elif key == "Fn::GetAtt":
                found.add(element[0] if isinstance(element, list) else str(element).split(".")[0])
            elif key == "Fn::Sub":
                text = element[0] if isinstance(element, list) else element
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
                found |= _references(element[1:] if isinstance(element, list) else [])
            else:
                found |= _references(element)
    return found


def _resource_map_delete(resource_map: Any) -> None:
    """Delete in reverse dependency order, as CloudFormation does: a resource goes only after its dependents."""
    definitions = {
        name: body
        for name, body in resource_map._resource_json_map.items()
        if body.get("DeletionPolicy") != "Retain" and name in resource_map._parsed_resources
    }
    needed_by = {name: _references(body) & set(definitions) for name, body in definitions.items()}
    remaining = set(definitions)
    while remaining:
        ready = sorted(name for name in remaining if not any(name in needed_by[other] for other in remaining - {name}))
        if not ready:
            raise ValidationError(message=f"circular dependencies between {sorted(remaining)}")
        for name in ready:
            resource = resource_map._parsed_resources[name]
            if not isinstance(resource, str) and resource is not None:
                resource_map._delete_resource(resource, definitions[name])
            resource_map._parsed_resources.pop(name)
            remaining.discard(name)


def _backend_delete_stack(backend: CloudFormationBackend, name_or_stack_id: str) -> None:
    """As CloudFormation: a deletion that fails leaves the stack DELETE_FAILED with the reason."""
    stack = backend.stacks.get(name_or_stack_id) or next(
        (s for s in backend.stacks.values() if s.name == name_or_stack_id), None
    )
    if stack is None:
        return
    try:
        _patches.original(CloudFormationBackend, "delete_stack")(backend, stack.stack_id)
    except Exception as err:  # any resource's failure becomes the stack's status, as CloudFormation reports it
        backend.stacks[stack.stack_id] = stack
        stack.status = "DELETE_FAILED"
        stack._add_stack_event("DELETE_FAILED", resource_status_reason=str(err))


def _create_replica_table(account_id: str, name: str, properties: dict[str, Any], replica: dict[str, Any]) -> None:
    sse = None
    if (properties.get("SSESpecification") or {}).get("SSEEnabled"):
        sse = {"Enabled": True, "SSEType": "KMS"}
        replica_key = (replica.get("SSESpecification") or {}).get("KMSMasterKeyId")
        if replica_key:
            sse["KMSMasterKeyId"] = replica_key
    backend = dynamodb_backends[account_id][replica["Region"]]
    backend.create_table(
        name=name,
        schema=properties["KeySchema"],
        throughput=None,
        attr=properties["AttributeDefinitions"],
        global_indexes=[_index(index) for index in properties.get("GlobalSecondaryIndexes", [])],
        indexes=[_index(index) for index in properties.get("LocalSecondaryIndexes", [])],
        streams=properties.get("StreamSpecification"),
        billing_mode="PAY_PER_REQUEST",
        sse_specification=sse,
        tags=replica.get("Tags", []),
        deletion_protection_enabled=bool(replica.get("DeletionProtectionEnabled", False)),
        warm_throughput=None,
    )
    _apply_table_settings(account_id, replica["Region"], name, properties, replica)


def _index(index: dict[str, Any]) -> dict[str, Any]:
    return {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}


def _apply_table_settings(
    account_id: str, region: str, name: str, properties: dict[str, Any], replica: dict[str, Any]
) -> None:
    """TTL and point-in-time recovery, which moto's table resource ignores."""
    backend = dynamodb_backends[account_id][region]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        backend.update_time_to_live(name, {"Enabled": _true(ttl["Enabled"]), "AttributeName": ttl["AttributeName"]})
    recovery = replica.get("PointInTimeRecoverySpecification")
    if recovery:
        specification = {"PointInTimeRecoveryEnabled": _true(recovery["PointInTimeRecoveryEnabled"])}
        if "RecoveryPeriodInDays" in recovery:
            specification["RecoveryPeriodInDays"] = int(recovery["RecoveryPeriodInDays"])
        backend.update_continuous_backups(name, specification)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _current_replicator() -> GlobalTableReplicator:
    if _replicator is None:
        raise RuntimeError("iot_dr_local.cfn_extensions.install() has not been called")
    return _replicator


def _unsupported_resources(stack: Stack, template: dict[str, Any]) -> list[tuple[str, str]]:
    supported = get_model_map()
    conditions = stack.resource_map.lazy_condition_map
    unsupported = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        resource_type = resource["Type"]
        if resource_type in supported or resource_type.startswith("Custom::"):
            continue
        if "Condition" in resource and not conditions[resource["Condition"]]:
            continue
        unsupported.append((logical_id, resource_type))
    return unsupported


def _stack_create_resources(stack: Stack) -> None:
    unsupported = _unsupported_resources(stack, stack.template_dict)
    if not unsupported:
        try:
            _patches.original(Stack, "create_resources")(stack)
        except CustomResourceFailed as err:
            stack.status = "CREATE_FAILED"
            stack.status_reason = err.message
            stack._add_stack_event("CREATE_FAILED", resource_status_reason=err.message)
            # A failed stack has no outputs; evaluating them would try to create the failed resource again.
            stack.output_map = OutputMap(stack.resource_map, {**stack.template_dict, "Outputs": {}}, stack.stack_id)
        return
    for logical_id, resource_type in unsupported:
        stack.events.append(
            Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical_id,
                physical_resource_id="",
                resource_type=resource_type,
                resource_status="CREATE_FAILED",
                resource_status_reason=f"Resource type {resource_type} is not supported by the local cloud",
                resource_properties=None,
            )
        )
    reason = "Resource types not supported by the local cloud: " + ", ".join(
        sorted({resource_type for _, resource_type in unsupported})
    )
    stack.status = "CREATE_FAILED"
    stack.status_reason = reason
    stack._add_stack_event("CREATE_FAILED", resource_status_reason=reason)


def _stack_update(stack: Stack, template: str, *args: Any, **kwargs: Any) -> None:
    unsupported = _unsupported_resources(stack, Stack.parse_template(template))
    if unsupported:
        types = ", ".join(sorted({resource_type for _, resource_type in unsupported}))
        raise ValidationError(message=f"Resource types not supported by the local cloud: {types}")
    _patches.original(Stack, "update")(stack, template, *args, **kwargs)


def _table_create(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> Table:
    properties = dict(cloudformation_json["Properties"])
    sse = properties.get("SSESpecification")
    if sse is not None:
        properties["SSESpecification"] = {
            "Enabled": _true(sse.get("SSEEnabled", False)),
            "SSEType": sse.get("SSEType", "KMS"),
            **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
        }
    converted = {**cloudformation_json, "Properties": properties}
    table: Table = _patches.original(Table, "create_from_cloudformation_json")(
        resource_name, converted, account_id, region_name, **kwargs
    )
    _apply_table_settings(account_id, region_name, table.name, properties, properties)
    return table


def _function_create(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> LambdaFunction:
    fn: LambdaFunction = _patches.original(LambdaFunction, "create_from_cloudformation_json")(
        resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = cloudformation_json["Properties"]
    dropped = {key: properties[key] for key in ("Layers", "DeadLetterConfig") if key in properties}
    if dropped:
        # DeadLetterConfig is kept by lambda_runtime's patch of update_configuration.
        fn.update_configuration(dropped)
    # Environment values are strings in Lambda's API (a template's numbers and booleans arrive as text), so a
    # caller can send GetFunctionConfiguration's variables back in UpdateFunctionConfiguration.
    fn.environment_vars = {name: _environment_text(value) for name, value in (fn.environment_vars or {}).items()}
    return fn


def _environment_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _key_create(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> Key:
    properties = dict(cloudformation_json["Properties"])
    if isinstance(properties.get("KeyPolicy"), dict):
        properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
    # Template tags are Key/Value; the KMS API's are TagKey/TagValue.
    properties["Tags"] = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])]
    return _patches.original(Key, "create_from_cloudformation_json")(  # type: ignore[no-any-return]
        resource_name, {**cloudformation_json, "Properties": properties}, account_id, region_name, **kwargs
    )


def _iot_policy_document_as_text(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
    """The IoT API stores a policy document as JSON text; moto's resource stores the template's object."""
    properties = dict(cloudformation_json["Properties"])
    if isinstance(properties.get("PolicyDocument"), dict):
        properties["PolicyDocument"] = json.dumps(properties["PolicyDocument"])
    return {**cloudformation_json, "Properties": properties}


def _iot_policy_create(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> FakePolicy:
    return _patches.original(FakePolicy, "create_from_cloudformation_json")(  # type: ignore[no-any-return]
        resource_name, _iot_policy_document_as_text(cloudformation_json), account_id, region_name, **kwargs
    )


def _iot_thing_delete(thing: FakeThing, account_id: str, region_name: str) -> None:
    """Delete the thing by the name it was created with: moto re-reads ThingName from the template, unresolved."""
    backend = iot_backends[account_id][region_name]
    try:
        backend.delete_thing(thing.thing_name)
    except ResourceNotFoundException:
        return


def _iot_policy_delete(policy: FakePolicy, account_id: str, region_name: str) -> None:
    """Delete the policy by the name it was created with: moto re-reads PolicyName from the template, unresolved."""
    backend = iot_backends[account_id][region_name]
    if policy.name in backend.policies:
        backend.delete_policy(policy.name)


def _iot_policy_update(
    cls: type,
    original_resource: FakePolicy,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> FakePolicy:
    return _patches.original(FakePolicy, "update_from_cloudformation_json")(  # type: ignore[no-any-return]
        original_resource, new_resource_name, _iot_policy_document_as_text(cloudformation_json), account_id, region_name
    )


def _state_machine_settings(properties: dict[str, Any]) -> dict[str, Any]:
    if "DefinitionString" not in properties:
        raise ValidationError(message="The local cloud supports state machines with a DefinitionString only")
    settings: dict[str, Any] = {"definition": properties["DefinitionString"]}
    if "LoggingConfiguration" in properties:
        settings["logging"] = api_shape(properties["LoggingConfiguration"])
    if "TracingConfiguration" in properties:
        settings["tracing"] = api_shape(properties["TracingConfiguration"])
    return settings


def _state_machine_create(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> StateMachine:
    # moto creates it in the backend that does not execute; the API uses the executing one.
    properties = cloudformation_json["Properties"]
    settings = _state_machine_settings(properties)
    return stepfunctions_backend(account_id, region_name).create_state_machine(
        name=properties.get("StateMachineName", resource_name),
        definition=settings["definition"],
        roleArn=properties.get("RoleArn", ""),
        tags=cfn_to_api_tags(properties.get("Tags", [])),
        loggingConfiguration=settings.get("logging"),
        tracingConfiguration=settings.get("tracing"),
        sm_type=properties.get("StateMachineType", "STANDARD"),
    )


def _state_machine_update(
    cls: type,
    original_resource: StateMachine,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> StateMachine:
    properties = cloudformation_json["Properties"]
    if properties.get("StateMachineName", original_resource.name) != original_resource.name:
        replacement = _state_machine_create(cls, new_resource_name, cloudformation_json, account_id, region_name)
        stepfunctions_backend(account_id, region_name).delete_state_machine(original_resource.arn)
        return replacement
    settings = _state_machine_settings(properties)
    return stepfunctions_backend(account_id, region_name).update_state_machine(
        original_resource.arn,
        definition=settings["definition"],
        role_arn=properties.get("RoleArn"),
        logging_configuration=settings.get("logging"),
        tracing_configuration=settings.get("tracing"),
    )


def _state_machine_delete(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
) -> None:
    stepfunctions_backend(account_id, region_name).delete_state_machine(resource_name)


_CUSTOM_MODELS: tuple[type[CloudFormationModel], ...] = (
    TopicRule,
    GlobalTable,
    QueuePolicy,
    Secret,
    ApiStage,
    MetricAlarm,
    WebAcl,
    WebAclAssociation,
    Certificate,
    PolicyPrincipalAttachment,
    ThingPrincipalAttachment,
)


def install(replicator: GlobalTableReplicator) -> None:
    """Register the extra resource types and property fixes; GlobalTable groups go to ``replicator``."""
    global _replicator
    _replicator = replicator
    if _patches.applied:
        return
    for model in _CUSTOM_MODELS:
        get_model_map()[model.cloudformation_type()] = model
        get_name_type_map()[model.cloudformation_type()] = model.cloudformation_name_type()
    _patches.set(Stack, "create_resources", _stack_create_resources)
    _patches.set(Stack, "update", _stack_update)
    _patches.set(Table, "create_from_cloudformation_json", classmethod(_table_create))
    _patches.set(LambdaFunction, "create_from_cloudformation_json", classmethod(_function_create))
    _patches.set(Key, "create_from_cloudformation_json", classmethod(_key_create))
    _patches.set(StateMachine, "create_from_cloudformation_json", classmethod(_state_machine_create))
    _patches.set(StateMachine, "update_from_cloudformation_json", classmethod(_state_machine_update))
    _patches.set(StateMachine, "delete_from_cloudformation_json", classmethod(_state_machine_delete))
    # The LayerName property names the layer, and Ref gives the layer version ARN.
    _patches.set(LayerVersion, "cloudformation_name_type", staticmethod(lambda: "LayerName"))
    _patches.set(LayerVersion, "physical_resource_id", property(lambda layer: layer.arn))
    # Ref of an IoT policy is its name, and of a thing its name too.
    _patches.set(FakePolicy, "physical_resource_id", property(lambda policy: policy.name))
    _patches.set(FakeThing, "physical_resource_id", property(lambda thing: thing.thing_name))
    _patches.set(FakeThing, "delete", _iot_thing_delete)
    _patches.set(FakePolicy, "delete", _iot_policy_delete)
    _patches.set(FakePolicy, "create_from_cloudformation_json", classmethod(_iot_policy_create))
    _patches.set(FakePolicy, "update_from_cloudformation_json", classmethod(_iot_policy_update))
    _patches.set(CustomModel, "create_from_cloudformation_json", classmethod(_custom_create))
    _patches.set(CustomModel, "update_from_cloudformation_json", classmethod(_custom_update))
    _patches.set(CustomModel, "delete", _custom_delete)
    _patches.set(CloudFormationBackend, "delete_stack", _backend_delete_stack)
    _patches.set(parsing.ResourceMap, "delete", _resource_map_delete)
    # Resources moto's stack deletion leaves behind.
    _patches.set(LayerVersion, "delete", _delete_layer_version)
    _patches.set(RestAPI, "delete", _delete_rest_api)
    _patches.set(HealthCheck, "delete", _delete_health_check)
    _patches.set(parsing, "clean_json", _clean_json)


def uninstall() -> None:
    """Give moto its CloudFormation behaviour back."""
    global _replicator
    for model in _CUSTOM_MODELS:
        get_model_map().pop(model.cloudformation_type(), None)
        get_name_type_map().pop(model.cloudformation_type(), None)
    _patches.restore()
    _replicator = None
