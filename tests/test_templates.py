"""Invariants of the CloudFormation templates: lint-clean, least privilege, encryption, and the contracts
(SQL, state machine, handler files, environment) the rest of the solution relies on."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.data import AdditionalSpecs
from cfnlint.decode import decode
from cfnlint.helpers import load_resource
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from iot_dr.core.event_types import APPLY_WAVE, FAMILY_OF, WORKER_STATE
from iot_dr.health.checker_identity import THING_NAME_PREFIX
from iot_dr.secondary.workflow import EXPRESS_MAX_DURATION_SECONDS, SYNC_EXECUTION_CONFIG

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = REPO / "deployment"
LAMBDA_SOURCES = REPO / "source" / "lambda"
PRIMARY = DEPLOYMENT / "disaster-recovery-for-aws-iot-primary-region.template"
SECONDARY = DEPLOYMENT / "disaster-recovery-for-aws-iot-secondary-region.template"
ALL_TEMPLATES = sorted(DEPLOYMENT.glob("*.template"))
SCOPED_ARN = re.compile(
    r"^arn:\$\{AWS::Partition\}:(?P<service>[a-z0-9-]+):(?P<region>\$\{[\w:]+\}|[^:$]*):"
    r"(?P<account>\$\{[\w:]+\}|[^:$]*):"
)
# Services whose ARNs name neither region nor account (buckets, hosted zones, health checks), only the account
# (IAM roles), or only the region (API Gateway resources).
ACCOUNTLESS_ARN_SERVICES = {"s3", "route53"}
REGIONLESS_ARN_SERVICES = {"iam"}
REGIONAL_ONLY_ARN_SERVICES = {"apigateway"}
MAIN = DEPLOYMENT / "disaster-recovery-for-aws-iot.template"
LINT_REGIONS = {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"}

REGISTRY_SQL = (
    "SELECT *, newuuid() AS uuid, (timestamp() / 1000) + ${ItemTtlSeconds} AS expires FROM '$aws/events/#' "
    f"WHERE (topic(3) = 'thing' AND NOT startswith(topic(4), '{THING_NAME_PREFIX}')) OR topic(3) = 'thingType' "
    "OR topic(3) = 'thingTypeAssociation' "
    "OR topic(3) = 'thingGroup' OR topic(3) = 'thingGroupMembership' OR topic(3) = 'thingGroupHierarchy'"
)


def shadow_sql(topic_filter: str) -> str:
    """The shadow rules keep the message as published (base64), whatever numbers it holds."""
    return (
        "SELECT encode(*, 'base64') AS document, topic() AS topic, timestamp() AS receivedAt, "
        "'SHADOW_EVENT' AS eventType, newuuid() AS uuid, (timestamp() / 1000) + ${ItemTtlSeconds} AS expires "
        f"FROM '{topic_filter}'"
    )


JITR_SQL = "SELECT * FROM '$aws/events/certificates/registered/#' WHERE certificateStatus = 'PENDING_ACTIVATION'"

# function -> (source directory, handler module, environment variable names)
PRIMARY_FUNCTIONS = {
    "CaptureChangesFunction": (
        "iot-dr-capture-changes",
        "capture_changes",
        {"REPLICATION_TABLE", "ITEM_TTL_SECONDS", "LOG_LEVEL"},
    ),
    "MissingDeviceReplicationFunction": (
        "iot-dr-missing-device-replication",
        "missing_device_replication",
        {
            "REPLICATION_TABLE",
            "ITEM_TTL_SECONDS",
            "SECONDARY_REGION",
            "QUERY_STRING",
            "CURSOR_TABLE",
            "DELETE_ORPHANS",
            "LOG_LEVEL",
        },
    ),
    "JITRFunction": ("iot-dr-jitr", "jitr", {"IOT_POLICY_NAME", "LOG_LEVEL"}),
}
WORKER_ENV = {"STATE_TABLE", "PRIMARY_REGION", "LEDGER_RETENTION_DAYS", "LOG_LEVEL"}
SECONDARY_FUNCTIONS = {
    "DynamoTriggerFunction": (
        "iot-dr-dynamo-trigger",
        "dynamo_trigger",
        {"STATE_MACHINE_ARN", "DEAD_LETTER_TABLE", "LOG_LEVEL"},
    ),
    "ThingCrudFunction": ("iot-dr-thing-crud", "thing_crud", WORKER_ENV),
    "ThingTypeCrudFunction": ("iot-dr-thing-type-crud", "thing_type_crud", WORKER_ENV),
    "ThingGroupCrudFunction": ("iot-dr-thing-group-crud", "thing_group_crud", WORKER_ENV),
    "ShadowSyncerFunction": ("iot-dr-shadow-syncer", "shadow_syncer", WORKER_ENV),
    "CertificatePolicySyncFunction": (
        "iot-dr-certificate-policy-sync",
        "certificate_policy_sync",
        WORKER_ENV,
    ),
    "ParkEventFunction": ("iot-dr-park-event", "park_event", {"DEAD_LETTER_TABLE", "FALLBACK_QUEUE_URL", "LOG_LEVEL"}),
    "JITRFunction": ("iot-dr-jitr", "jitr", {"IOT_POLICY_NAME", "LOG_LEVEL"}),
}

# Each role gets exactly the IoT actions its function needs.
EXPECTED_IOT_ACTIONS = {
    (PRIMARY, "CaptureChangesFunction"): {
        "DescribeCertificate", "GetPolicy", "GetPolicyVersion", "ListPolicyVersions", "ListThingPrincipals",
        "ListAttachedPolicies", "DescribeThing",
    },
    (PRIMARY, "MissingDeviceReplicationFunction"): {
        "SearchIndex", "ListThings", "DescribeThing", "ListThingPrincipals", "DescribeCertificate",
        "ListAttachedPolicies", "ListPolicyVersions", "GetPolicyVersion", "GetIndexingConfiguration",
        "ListThingGroupsForThing", "ListNamedShadowsForThing", "GetThingShadow", "DescribeThingType",
        "DescribeThingGroup",
    },
    (PRIMARY, "JITRFunction"): {
        "DescribeCertificate", "UpdateCertificate", "CreateThing", "DescribeThing", "CreatePolicy", "GetPolicy",
        "AttachPolicy", "AttachThingPrincipal",
    },
    (SECONDARY, "DynamoTriggerFunction"): set(),
    (SECONDARY, "ThingCrudFunction"): {
        "CreateThing", "UpdateThing", "DeleteThing", "DescribeThing", "ListThingPrincipals",
        "AttachThingPrincipal", "DetachThingPrincipal", "DescribeCertificate", "DescribeThingType",
        "GetThingShadow", "DeleteThingShadow", "ListNamedShadowsForThing", "DescribeEndpoint",
    },
    (SECONDARY, "ThingTypeCrudFunction"): {
        "CreateThingType", "DescribeThingType", "DeprecateThingType", "DeleteThingType",
    },
    (SECONDARY, "ThingGroupCrudFunction"): {
        "CreateThingGroup", "DescribeThingGroup", "UpdateThingGroup", "DeleteThingGroup",
        "AddThingToThingGroup", "RemoveThingFromThingGroup", "DescribeThing",
    },
    (SECONDARY, "ShadowSyncerFunction"): {
        "GetThingShadow", "UpdateThingShadow", "DeleteThingShadow", "DescribeThing", "DescribeEndpoint",
    },
    (SECONDARY, "CertificatePolicySyncFunction"): {
        "RegisterCertificateWithoutCA", "DescribeCertificate", "UpdateCertificate", "DeleteCertificate",
        "ListPrincipalThings", "DetachThingPrincipal", "CreatePolicy", "GetPolicy", "GetPolicyVersion",
        "ListPolicyVersions", "CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicyVersion",
        "DeletePolicy", "AttachPolicy", "DetachPolicy", "ListAttachedPolicies", "ListTargetsForPolicy",
        "DescribeThingGroup",
    },
    (SECONDARY, "ParkEventFunction"): set(),
    (SECONDARY, "JITRFunction"): {
        "DescribeCertificate", "UpdateCertificate", "CreateThing", "DescribeThing", "CreatePolicy", "GetPolicy",
        "AttachPolicy", "AttachThingPrincipal",
    },
}  # fmt: skip

DESTRUCTIVE_PREFIXES = (
    "Delete", "Detach", "Update", "Remove", "Deprecate", "Put", "Set", "Attach", "Register", "Create",
)  # fmt: skip
# Writes the service authorization reference allows on no resource but "*": creating or registering a certificate
# without a CA, the log-delivery set-up Step Functions performs with its role for execution logging, and creating a
# KMS key, a Route 53 health check or a stream mapping (the main stack's deployment role; conditions narrow them).
UNSCOPABLE_WRITES = {
    "kms:CreateKey",
    "route53:CreateHealthCheck",
    "lambda:CreateEventSourceMapping",
    "iot:CreateCertificateFromCsr",
    "iot:RegisterCertificateWithoutCA",
    "logs:CreateLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:PutResourcePolicy",
}

# The routing is declared once, in the layer; the template's Choice state must implement exactly it.
ROUTES = {str(event_type): WORKER_STATE[family] for event_type, family in FAMILY_OF.items()}
WORKER_RETRY_ERRORS = [
    "DependencyNotReady",
    "TransientReplicationError",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


# ------------------------------------------------------------------------------------------------ helpers
@functools.cache
def load(path: Path) -> dict[str, Any]:
    """The template as plain JSON-like data, short-form tags expanded (Ref, Fn::Sub, Fn::GetAtt)."""
    template, matches = decode(str(path))
    assert not matches, f"{path.name} does not parse: {matches}"
    return json.loads(json.dumps(template))


def resources(path: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource.get("Properties", {})
        for name, resource in load(path)["Resources"].items()
        if resource["Type"] == resource_type
    }


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def ref_target(value: Any) -> str | None:
    """Logical ID behind a Ref or Fn::GetAtt, None for anything else."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def conditional_statements(statements: Any) -> list[dict[str, Any]]:
    """Statements, with both branches of an Fn::If taken (AWS::NoValue dropped), so conditional ones are checked too."""
    expanded = []
    for statement in as_list(statements):
        if "Fn::If" in statement:
            _, *branches = statement["Fn::If"]
            expanded.extend(b for b in branches if b != {"Ref": "AWS::NoValue"})
        else:
            expanded.append(statement)
    return expanded


def identity_statements(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy (role inline policies, IAM policies) with its resource."""
    for name, props in resources(path, "AWS::IAM::Role").items():
        for policy in props.get("Policies", []):
            for statement in conditional_statements(policy["PolicyDocument"]["Statement"]):
                yield name, statement
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, props in resources(path, policy_type).items():
            for statement in conditional_statements(props["PolicyDocument"]["Statement"]):
                yield name, statement


def role_statements(path: Path, role: str) -> list[dict[str, Any]]:
    """Statements granted to ``role``, inline or through attached IAM policies."""
    found = [s for name, s in identity_statements(path) if name == role]
    for props in resources(path, "AWS::IAM::Policy").values():
        if role in {ref_target(r) for r in props.get("Roles", [])}:
            found.extend(as_list(props["PolicyDocument"]["Statement"]))
    return found


def function_role(path: Path, function: str) -> str:
    role = ref_target(resources(path, "AWS::Lambda::Function")[function]["Role"])
    assert role is not None
    return role


@functools.cache
def service_authorization() -> dict[str, Any]:
    """The IAM service authorization reference as shipped with cfn-lint (actions and their resource types)."""
    return load_resource(AdditionalSpecs, "Policies.json")


def supports_no_resource(action: str) -> bool:
    service, name = action.split(":")
    entry = service_authorization()[service.lower()]["Actions"][name.lower()]
    return not entry.get("Resources")


def function_cases(templates: list[Path]) -> list[Any]:
    return [
        pytest.param(path, name, id=f"{path.stem.removeprefix('disaster-recovery-for-aws-iot-')}:{name}")
        for path in templates
        for name in resources(path, "AWS::Lambda::Function")
    ]


def substitute(text: str, values: dict[str, str]) -> str:
    """Resolve Fn::Sub placeholders the way CloudFormation would, failing on any unknown name."""

    def resolve(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"unresolved placeholder ${{{name}}}"
        return values[name]

    return re.sub(r"\$\{([^}!]+)\}", resolve, text)


def state_machine_definition(parameters: dict[str, str]) -> dict[str, Any]:
    props = resources(SECONDARY, "AWS::StepFunctions::StateMachine")["ReplicationStateMachine"]
    values = {"AWS::Partition": "aws", "AWS::Region": "us-west-2", "AWS::AccountId": "123456789012"}
    values.update(parameters)
    for name in resources(SECONDARY, "AWS::Lambda::Function"):
        values[f"{name}.Arn"] = f"arn:aws:lambda:us-west-2:123456789012:function:{name}"
    text = substitute(props["DefinitionString"]["Fn::Sub"], values)
    AmazonStateLanguageParser.parse(text)
    return json.loads(text)


def parameter_defaults(path: Path) -> dict[str, str]:
    return {name: str(p["Default"]) for name, p in load(path)["Parameters"].items() if "Default" in p}


# ------------------------------------------------------------------------------------------------ linting
def test_cfnlintrc_covers_every_template_and_the_five_regions() -> None:
    config = yaml.safe_load((REPO / ".cfnlintrc").read_text())
    assert config["templates"] == ["deployment/*.template"]
    assert set(config["regions"]) == LINT_REGIONS
    assert "ignore_checks" not in config


def test_cfn_lint_reports_no_error_and_no_warning_on_any_template() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is not installed"
    result = subprocess.run([cfn_lint], cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("path", [PRIMARY, SECONDARY], ids=["primary", "secondary"])
def test_template_header_metadata_and_parameters_are_complete(path: Path) -> None:
    template = load(path)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Description"].startswith("(SO0152) Disaster Recovery for AWS IoT")
    interface = template["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for group in interface["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"]), "every parameter in exactly one group"
    assert set(interface["ParameterLabels"]) == set(template["Parameters"])
    for name, parameter in template["Parameters"].items():
        assert parameter.get("Description"), f"{name} has no Description"
        constrained = {"AllowedPattern", "AllowedValues", "MinValue", "MinLength"} & set(parameter)
        assert constrained, f"{name} accepts anything"


@pytest.mark.parametrize(
    ("path", "other_region"), [(PRIMARY, "SecondaryRegion"), (SECONDARY, "PrimaryRegion")], ids=["primary", "secondary"]
)
def test_rules_reject_the_other_region_being_this_region(path: Path, other_region: str) -> None:
    assertions = [a for rule in load(path)["Rules"].values() for a in rule["Assertions"]]
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": other_region}, {"Ref": "AWS::Region"}]}]} in [
        a["Assert"] for a in assertions
    ]


# ------------------------------------------------------------------------------------------------ Lambda
@pytest.mark.parametrize(("path", "function"), function_cases(ALL_TEMPLATES))
def test_every_function_runs_python312_with_the_layer_an_encrypted_environment_and_a_retained_log_group(
    path: Path, function: str
) -> None:
    props = resources(path, "AWS::Lambda::Function")[function]
    assert props["Runtime"] == "python3.12"
    layers = {ref_target(layer) for layer in props.get("Layers", [])}
    layer_versions = resources(path, "AWS::Lambda::LayerVersion")
    dr_layers = {
        name
        for name, layer in layer_versions.items()
        if layer["Content"]["S3Key"] == {"Fn::Sub": "${ArtifactPrefix}iot-dr-layer.zip"}
        and layer["CompatibleRuntimes"] == ["python3.12"]
    }
    assert layers & dr_layers, f"{function} lacks the IoTDR layer"
    assert ref_target(props["KmsKeyArn"]) in resources(path, "AWS::KMS::Key")
    log_groups = [
        group
        for group in resources(path, "AWS::Logs::LogGroup").values()
        if group.get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(log_groups) == 1, f"{function} needs exactly one log group /aws/lambda/<name>"
    group = log_groups[0]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert ref_target(group["KmsKeyId"]) in resources(path, "AWS::KMS::Key")


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_every_function_has_a_role_of_its_own(path: Path) -> None:
    roles = [function_role(path, name) for name in resources(path, "AWS::Lambda::Function")]
    assert len(roles) == len(set(roles))


@pytest.mark.parametrize(("path", "function"), function_cases(ALL_TEMPLATES))
def test_every_function_may_write_only_its_own_log_group(path: Path, function: str) -> None:
    log_group = next(
        name
        for name, group in resources(path, "AWS::Logs::LogGroup").items()
        if group.get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    )
    log_statements = [
        s for s in role_statements(path, function_role(path, function)) if "logs:PutLogEvents" in as_list(s["Action"])
    ]
    assert log_statements, f"{function} cannot write logs"
    for statement in log_statements:
        assert [ref_target(r) for r in as_list(statement["Resource"])] == [log_group]


@pytest.mark.parametrize(("path", "function"), function_cases(ALL_TEMPLATES))
def test_every_handler_has_its_source_file(path: Path, function: str) -> None:
    props = resources(path, "AWS::Lambda::Function")[function]
    module, entry = props["Handler"].split(".")
    assert entry == "handler"
    key = props["Code"]["S3Key"]["Fn::Sub"]
    assert key.startswith("${ArtifactPrefix}") and key.endswith(".zip")
    directory = key.removeprefix("${ArtifactPrefix}").removesuffix(".zip")
    source = LAMBDA_SOURCES / directory / f"{module}.py"
    if not source.exists():
        pytest.skip(f"{source.relative_to(REPO)} is not written yet")
    spec = importlib.util.spec_from_file_location(f"_template_handler_{directory.replace('-', '_')}", source)
    assert spec is not None and spec.loader is not None
    handler_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler_module)
    assert callable(getattr(handler_module, "handler", None)), f"{source.relative_to(REPO)} has no handler"


def test_every_lambda_directory_is_deployed_by_a_template() -> None:
    deployed = {
        props["Code"]["S3Key"]["Fn::Sub"].removeprefix("${ArtifactPrefix}").removesuffix(".zip")
        for path in ALL_TEMPLATES
        for props in resources(path, "AWS::Lambda::Function").values()
    }
    directories = {p.name for p in LAMBDA_SOURCES.iterdir() if p.is_dir() and p.name != "__pycache__"}
    # The region syncers are the guide's operator jobs: users run them as a Lambda function, a container or a
    # command of their own (README, "Region syncs"), never deployed by the solution's stacks.
    operator_jobs = {"iot-dr-region-syncer"}
    assert directories - operator_jobs <= deployed, f"built but never deployed: {sorted(directories - deployed)}"


@pytest.mark.parametrize(
    ("path", "expected"), [(PRIMARY, PRIMARY_FUNCTIONS), (SECONDARY, SECONDARY_FUNCTIONS)], ids=["primary", "secondary"]
)
def test_functions_match_their_handler_directories_and_settings(
    path: Path, expected: dict[str, tuple[str, str, set[str]]]
) -> None:
    functions = resources(path, "AWS::Lambda::Function")
    assert set(functions) == set(expected)
    for name, (directory, module, env) in expected.items():
        props = functions[name]
        assert props["Handler"] == f"{module}.handler"
        assert props["Code"] == {
            "S3Bucket": {"Ref": "ArtifactBucket"},
            "S3Key": {"Fn::Sub": f"${{ArtifactPrefix}}{directory}.zip"},
        }
        assert set(props["Environment"]["Variables"]) == env, name


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_checkov_suppressions_sit_on_single_resources_and_each_gives_its_reason(path: Path) -> None:
    template = load(path)
    assert "checkov" not in template.get("Metadata", {}), "suppressions belong next to the resource they excuse"
    for name, body in template["Resources"].items():
        skips = body.get("Metadata", {}).get("checkov", {}).get("skip", [])
        ids = [skip["id"] for skip in skips]
        assert len(ids) == len(set(ids)), f"{name} suppresses a check twice"
        for skip in skips:
            assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), f"{name}: {skip}"
            assert len(skip.get("comment", "").split()) >= 8, f"{name}: {skip['id']} gives no reason"


# ------------------------------------------------------------------------------------------------ IAM
@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_iam_actions_are_explicit_and_never_iam_wildcards(path: Path) -> None:
    for name, statement in identity_statements(path):
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{name}: wildcard action {action}"
    assert "iam:*" not in (path.read_text())


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_star_resources_only_carry_actions_that_support_no_resource(path: Path) -> None:
    for name, statement in identity_statements(path):
        if "*" not in as_list(statement["Resource"]):
            continue
        assert as_list(statement["Resource"]) == ["*"], f"{name}: mix '*' with scoped resources"
        for action in as_list(statement["Action"]):
            assert supports_no_resource(action), f"{name}: {action} supports resource-level permissions"


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_no_destructive_action_is_granted_on_every_resource(path: Path) -> None:
    for name, statement in identity_statements(path):
        if statement.get("Effect") != "Allow" or "*" not in as_list(statement["Resource"]):
            continue
        for action in as_list(statement["Action"]):
            if action.split(":")[1].startswith(DESTRUCTIVE_PREFIXES):
                assert action in UNSCOPABLE_WRITES, f"{name}: destructive {action} on '*'"


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_scoped_resources_are_arns_of_this_account_with_the_partition_pseudo_parameter(path: Path) -> None:
    template_resources = load(path)["Resources"]
    for name, statement in identity_statements(path):
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                continue
            target = ref_target(resource)
            if target is not None:
                assert target in template_resources, f"{name}: {resource} is not a resource of this stack"
                continue
            sub = resource["Fn::Sub"]
            arn = SCOPED_ARN.match(sub if isinstance(sub, str) else sub[0])
            assert arn, f"{name}: {resource} is not an ARN built with ${{AWS::Partition}}"
            if arn["service"] in ACCOUNTLESS_ARN_SERVICES:
                assert arn["region"] == arn["account"] == "", f"{name}: {resource}"
            elif arn["service"] in REGIONLESS_ARN_SERVICES:
                assert (arn["region"], arn["account"]) == ("", "${AWS::AccountId}"), f"{name}: {resource}"
            elif arn["service"] in REGIONAL_ONLY_ARN_SERVICES:
                assert re.fullmatch(r"\$\{\w+Region\}", arn["region"]) and arn["account"] == "", f"{name}: {resource}"
            else:
                assert re.fullmatch(r"\$\{(AWS::Region|\w+Region)\}", arn["region"]), f"{name}: {resource} any region"
                assert arn["account"] == "${AWS::AccountId}", f"{name}: {resource} is not this account"


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_no_arn_hard_codes_the_partition(path: Path) -> None:
    assert not re.search(r"arn:aws[a-z-]*:", path.read_text())


@pytest.mark.parametrize(("path", "function"), sorted(EXPECTED_IOT_ACTIONS), ids=lambda v: getattr(v, "stem", v))
def test_each_role_holds_exactly_the_iot_actions_of_its_function(path: Path, function: str) -> None:
    granted = {
        action.removeprefix("iot:")
        for statement in role_statements(path, function_role(path, function))
        for action in as_list(statement["Action"])
        if action.startswith("iot:")
    }
    assert granted == EXPECTED_IOT_ACTIONS[(path, function)]


def test_reconciliation_reads_the_registries_of_both_regions_and_nothing_else() -> None:
    statements = role_statements(PRIMARY, function_role(PRIMARY, "MissingDeviceReplicationFunction"))
    regions = set()
    for statement in statements:
        actions = as_list(statement["Action"])
        if not any(a.startswith("iot:") for a in actions):
            continue
        assert all(a.split(":")[1].startswith(("Describe", "List", "Get", "Search")) for a in actions)
        for resource in as_list(statement["Resource"]):
            if resource != "*":
                regions.add(SCOPED_ARN.match(resource["Fn::Sub"])["region"])
    assert regions == {"${AWS::Region}", "${SecondaryRegion}"}


def test_reconciliation_keeps_its_cursor_in_a_table_of_its_own_and_deletes_orphans_only_on_request() -> None:
    table = resources(PRIMARY, "AWS::DynamoDB::Table")["ReconcileCursorTable"]
    assert table["KeySchema"] == [{"AttributeName": "sweep", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    statements = role_statements(PRIMARY, function_role(PRIMARY, "MissingDeviceReplicationFunction"))
    dynamodb = {
        ref_target(r): {a.removeprefix("dynamodb:") for a in as_list(s["Action"])}
        for s in statements
        if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))
        for r in as_list(s["Resource"])
    }
    assert dynamodb == {"ReplicationTable": {"PutItem"}, "ReconcileCursorTable": {"GetItem", "PutItem"}}
    function = resources(PRIMARY, "AWS::Lambda::Function")["MissingDeviceReplicationFunction"]
    variables = function["Environment"]["Variables"]
    assert ref_target(variables["CURSOR_TABLE"]) == "ReconcileCursorTable"
    assert ref_target(variables["DELETE_ORPHANS"]) == "ReconcileDeleteOrphans"
    assert parameter_defaults(PRIMARY)["ReconcileDeleteOrphans"] == "false"
    assert load(PRIMARY)["Parameters"]["ReconcileDeleteOrphans"]["AllowedValues"] == ["false", "true"]


@pytest.mark.parametrize(
    ("function", "table", "actions"),
    [
        ("ThingCrudFunction", "ReplicationStateTable", {"GetItem", "PutItem", "UpdateItem"}),
        ("ThingTypeCrudFunction", "ReplicationStateTable", {"GetItem", "PutItem", "UpdateItem"}),
        ("ThingGroupCrudFunction", "ReplicationStateTable", {"GetItem", "PutItem", "UpdateItem"}),
        ("ShadowSyncerFunction", "ReplicationStateTable", {"GetItem", "PutItem", "UpdateItem"}),
        ("CertificatePolicySyncFunction", "ReplicationStateTable", {"GetItem", "PutItem", "UpdateItem"}),
        ("ParkEventFunction", "DeadLetterTable", {"PutItem"}),
        ("DynamoTriggerFunction", "DeadLetterTable", {"PutItem"}),
    ],
)
def test_secondary_functions_reach_only_their_own_table(function: str, table: str, actions: set[str]) -> None:
    table_statements = [
        s
        for s in role_statements(SECONDARY, function_role(SECONDARY, function))
        if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))
        and all(ref_target(r) in resources(SECONDARY, "AWS::DynamoDB::Table") for r in as_list(s["Resource"]))
    ]
    assert len(table_statements) == 1
    statement = table_statements[0]
    assert [ref_target(r) for r in as_list(statement["Resource"])] == [table]
    assert {a.removeprefix("dynamodb:") for a in as_list(statement["Action"])} == actions


def test_trigger_may_read_the_stream_run_the_workflow_synchronously_and_park_failures() -> None:
    statements = role_statements(SECONDARY, function_role(SECONDARY, "DynamoTriggerFunction"))
    by_action = {a: s for s in statements for a in as_list(s["Action"])}
    stream = by_action["dynamodb:GetRecords"]["Resource"]["Fn::Sub"]
    assert stream.endswith(":table/${GlobalDynamoDBTableName}/stream/*")
    assert ref_target(by_action["states:StartSyncExecution"]["Resource"]) == "ReplicationStateMachine"
    assert "states:StartExecution" not in by_action
    assert ref_target(by_action["sqs:SendMessage"]["Resource"]) == "TriggerFailureQueue"


def test_the_trigger_outlasts_an_express_execution_and_a_shard_runs_batches_side_by_side() -> None:
    function = resources(SECONDARY, "AWS::Lambda::Function")["DynamoTriggerFunction"]
    # Express executions last at most 5 minutes; Lambda functions at most 15.
    assert EXPRESS_MAX_DURATION_SECONDS < function["Timeout"] <= 900
    assert SYNC_EXECUTION_CONFIG.read_timeout > EXPRESS_MAX_DURATION_SECONDS
    factor = load(SECONDARY)["Parameters"]["StreamParallelizationFactor"]
    assert 1 <= factor["MinValue"] <= factor["Default"] <= factor["MaxValue"] <= 10


def test_state_machine_may_invoke_exactly_the_six_workflow_functions() -> None:
    role = ref_target(resources(SECONDARY, "AWS::StepFunctions::StateMachine")["ReplicationStateMachine"]["RoleArn"])
    assert role is not None
    invoked = {
        ref_target(r)
        for s in role_statements(SECONDARY, role)
        if "lambda:InvokeFunction" in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }
    assert invoked == {
        "ThingCrudFunction",
        "ThingTypeCrudFunction",
        "ThingGroupCrudFunction",
        "ShadowSyncerFunction",
        "CertificatePolicySyncFunction",
        "ParkEventFunction",
    }


# ------------------------------------------------------------------------------------------------ encryption
@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_every_table_queue_and_log_group_is_encrypted(path: Path) -> None:
    keys = set(resources(path, "AWS::KMS::Key"))
    for name, table in resources(path, "AWS::DynamoDB::Table").items():
        sse = table.get("SSESpecification", {})
        assert sse.get("SSEEnabled") is True and sse.get("SSEType") == "KMS", name
        assert ref_target(sse["KMSMasterKeyId"]) in keys, name
    for name, table in resources(path, "AWS::DynamoDB::GlobalTable").items():
        assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}, name
    for name, queue in resources(path, "AWS::SQS::Queue").items():
        assert ref_target(queue.get("KmsMasterKeyId")) in keys, name
    for name, group in resources(path, "AWS::Logs::LogGroup").items():
        assert ref_target(group.get("KmsKeyId")) in keys, name


@pytest.mark.parametrize(
    ("path", "services"),
    [
        (
            PRIMARY,
            [{"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}, "cloudwatch.amazonaws.com", "events.amazonaws.com"],
        ),
        (SECONDARY, [{"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}, "cloudwatch.amazonaws.com"]),
    ],
    ids=["primary", "secondary"],
)
def test_one_rotating_key_per_stack_trusts_the_account_and_only_the_services_that_need_it(
    path: Path, services: list[Any]
) -> None:
    keys = resources(path, "AWS::KMS::Key")
    assert len(keys) == 1
    key = next(iter(keys.values()))
    assert key["EnableKeyRotation"] is True
    statements = key["KeyPolicy"]["Statement"]
    root = [s for s in statements if "AWS" in s["Principal"]]
    assert [s["Principal"]["AWS"] for s in root] == [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]
    service_statements = [s for s in statements if "Service" in s["Principal"]]
    assert [s["Principal"]["Service"] for s in service_statements] == services
    for statement in service_statements:
        assert statement.get("Condition"), "service principals are limited by a condition"
        assert all(a.startswith("kms:") and "*" not in a for a in as_list(statement["Action"]))


@pytest.mark.parametrize("path", [PRIMARY, SECONDARY], ids=["primary", "secondary"])
def test_every_taggable_resource_carries_the_solution_tag(path: Path) -> None:
    taggable = (
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::Logs::LogGroup",
        "AWS::IoT::TopicRule",
        "AWS::StepFunctions::StateMachine",
    )
    for resource_type in taggable:
        for name, props in resources(path, resource_type).items():
            assert {"Key": "Solution", "Value": "IoTDR"} in props.get("Tags", []), name
    for name, table in resources(path, "AWS::DynamoDB::GlobalTable").items():
        for replica in table["Replicas"]:
            assert {"Key": "Solution", "Value": "IoTDR"} in replica["Tags"], name


# ------------------------------------------------------------------------------------------------ primary
def test_replication_table_is_a_2019_global_table_in_both_regions_with_ttl_and_stream() -> None:
    tables = resources(PRIMARY, "AWS::DynamoDB::GlobalTable")
    assert list(tables) == ["ReplicationTable"]
    table = tables["ReplicationTable"]
    assert table["TableName"] == {"Ref": "GlobalDynamoDBTableName"}
    assert table["KeySchema"] == [{"AttributeName": "uuid", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "uuid", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert [r["Region"] for r in table["Replicas"]] == [{"Ref": "AWS::Region"}, {"Ref": "SecondaryRegion"}]
    for replica in table["Replicas"]:
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for path in ALL_TEMPLATES:
        assert "CreateGlobalTable" not in path.read_text()
    # The only plain table of the primary is the reconciliation's cursor: not replicated, no stream.
    plain = resources(PRIMARY, "AWS::DynamoDB::Table")
    assert set(plain) == {"ReconcileCursorTable"}
    assert "StreamSpecification" not in plain["ReconcileCursorTable"]


@pytest.mark.parametrize(
    ("path", "rule", "sql", "target"),
    [
        (PRIMARY, "RegistryEventsRule", {"Fn::Sub": REGISTRY_SQL}, "ReplicationTable"),
        *(
            (PRIMARY, rule, {"Fn::Sub": shadow_sql(f"$aws/things/+/shadow/{topic}")}, "ReplicationTable")
            for rule, topic in (
                ("ShadowDocumentsRule", "update/documents"),
                ("NamedShadowDocumentsRule", "name/+/update/documents"),
                ("ShadowDeletionsRule", "delete/accepted"),
                ("NamedShadowDeletionsRule", "name/+/delete/accepted"),
            )
        ),
        (PRIMARY, "JITRRule", JITR_SQL, "JITRFunction"),
        (SECONDARY, "JITRRule", JITR_SQL, "JITRFunction"),
    ],
    ids=[
        "primary-registry",
        "primary-shadow-documents",
        "primary-named-shadow-documents",
        "primary-shadow-deletions",
        "primary-named-shadow-deletions",
        "primary-jitr",
        "secondary-jitr",
    ],
)
def test_topic_rules_use_the_documented_sql_and_keep_failures_in_a_queue(
    path: Path, rule: str, sql: Any, target: str
) -> None:
    payload = resources(path, "AWS::IoT::TopicRule")[rule]["TopicRulePayload"]
    assert payload["Sql"] == sql
    assert payload["AwsIotSqlVersion"] == "2016-03-23"
    assert payload["RuleDisabled"] is False
    (action,) = payload["Actions"]
    if "DynamoDBv2" in action:
        assert ref_target(action["DynamoDBv2"]["PutItem"]["TableName"]) == target
        assert ref_target(action["DynamoDBv2"]["RoleArn"]) in resources(path, "AWS::IAM::Role")
    else:
        assert ref_target(action["Lambda"]["FunctionArn"]) == target
    error = payload["ErrorAction"]["Sqs"]
    assert ref_target(error["QueueUrl"]) in resources(path, "AWS::SQS::Queue")
    assert error["UseBase64"] is False


@pytest.mark.parametrize("path", [PRIMARY, SECONDARY], ids=["primary", "secondary"])
def test_jitr_function_may_be_invoked_only_by_its_rule_in_this_account(path: Path) -> None:
    permissions = [
        p
        for p in resources(path, "AWS::Lambda::Permission").values()
        if ref_target(p["FunctionName"]) == "JITRFunction"
    ]
    assert len(permissions) == 1
    permission = permissions[0]
    assert permission["Principal"] == "iot.amazonaws.com"
    assert ref_target(permission["SourceArn"]) == "JITRRule"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


@pytest.mark.parametrize("path", [PRIMARY, SECONDARY], ids=["primary", "secondary"])
def test_registrations_the_jitr_function_fails_on_are_kept_in_the_queue_of_its_rule_errors(path: Path) -> None:
    # The rule invokes the function asynchronously, so its ErrorAction never sees the function's own failures.
    queue = ref_target(
        resources(path, "AWS::IoT::TopicRule")["JITRRule"]["TopicRulePayload"]["ErrorAction"]["Sqs"]["QueueUrl"]
    )
    function = resources(path, "AWS::Lambda::Function")["JITRFunction"]
    assert ref_target(function["DeadLetterConfig"]["TargetArn"]) == queue
    statements = role_statements(path, function_role(path, "JITRFunction"))
    sends = [s for s in statements if "sqs:SendMessage" in as_list(s["Action"])]
    assert [[ref_target(r) for r in as_list(s["Resource"])] for s in sends] == [[queue]]
    key_use = [s for s in statements if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert len(key_use) == 1
    assert key_use[0]["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}}
    }


def test_rule_role_writes_the_table_and_queue_and_trusts_iot_of_this_account_only() -> None:
    role = resources(PRIMARY, "AWS::IAM::Role")["IoTRuleRole"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    grants = {
        (action, ref_target(statement["Resource"]))
        for statement in role_statements(PRIMARY, "IoTRuleRole")
        for action in as_list(statement["Action"])
    }
    assert grants == {
        ("dynamodb:PutItem", "ReplicationTable"),
        ("sqs:SendMessage", "CaptureDeadLetterQueue"),
        ("kms:GenerateDataKey", "StackKey"),
        ("kms:Decrypt", "StackKey"),
    }


def test_cloudtrail_rule_sends_the_documented_api_calls_to_capture_with_retries_and_a_dead_letter_queue() -> None:
    rule = resources(PRIMARY, "AWS::Events::Rule")["CaptureChangesRule"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.iot"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert pattern["detail"]["eventSource"] == ["iot.amazonaws.com"]
    assert set(pattern["detail"]["eventName"]) == {
        "CreateKeysAndCertificate", "CreateCertificateFromCsr", "RegisterCertificate",
        "RegisterCertificateWithoutCA", "UpdateCertificate", "DeleteCertificate", "CreatePolicy",
        "CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicyVersion", "DeletePolicy", "AttachPolicy",
        "DetachPolicy", "AttachPrincipalPolicy", "DetachPrincipalPolicy", "AttachThingPrincipal",
        "DetachThingPrincipal",
    }  # fmt: skip
    (target,) = rule["Targets"]
    assert ref_target(target["Arn"]) == "CaptureChangesFunction"
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert ref_target(target["DeadLetterConfig"]["Arn"]) == "CaptureDeadLetterQueue"
    capture = resources(PRIMARY, "AWS::Lambda::Function")["CaptureChangesFunction"]
    assert ref_target(capture["DeadLetterConfig"]["TargetArn"]) == "CaptureDeadLetterQueue"
    queue_policy = resources(PRIMARY, "AWS::SQS::QueuePolicy")["CaptureDeadLetterQueuePolicy"]
    allow = [s for s in queue_policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow[0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert ref_target(allow[0]["Condition"]["ArnEquals"]["aws:SourceArn"]) == "CaptureChangesRule"


@pytest.mark.parametrize(
    ("rule", "function"),
    [("CaptureChangesRule", "CaptureChangesFunction"), ("ReconcileScheduleRule", "MissingDeviceReplicationFunction")],
)
def test_eventbridge_rules_may_invoke_their_function(rule: str, function: str) -> None:
    permissions = [
        p for p in resources(PRIMARY, "AWS::Lambda::Permission").values() if ref_target(p["FunctionName"]) == function
    ]
    assert len(permissions) == 1
    assert permissions[0]["Principal"] == "events.amazonaws.com"
    assert ref_target(permissions[0]["SourceArn"]) == rule


def test_reconciliation_runs_on_the_schedule_parameter_within_the_lambda_time_limit() -> None:
    rule = resources(PRIMARY, "AWS::Events::Rule")["ReconcileScheduleRule"]
    assert rule["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert resources(PRIMARY, "AWS::Lambda::Function")["MissingDeviceReplicationFunction"]["Timeout"] == 900
    defaults = parameter_defaults(PRIMARY)
    assert defaults["ReconcileSchedule"] == "rate(30 minutes)"
    assert defaults["ItemTtlSeconds"] == "172800"
    assert load(PRIMARY)["Parameters"]["ItemTtlSeconds"]["MinValue"] == 3600


@pytest.mark.parametrize(
    ("path", "outputs"),
    [
        (
            PRIMARY,
            {
                "GlobalDynamoDBTableName", "CaptureDeadLetterQueueUrl", "CaptureChangesFunctionName",
                "MissingDeviceReplicationFunctionName", "JITRLambdaFunctionName", "IoTDRLambdaLayerVersionArn",
                "ReconcileCursorTableName",
            },
        ),
        (
            SECONDARY,
            {
                "StateMachineArn", "ReplicationStateTableName", "DeadLetterTableName", "TriggerFailureQueueUrl",
                "DynamoTriggerFunctionName", "ThingCrudFunctionName", "ThingTypeCrudFunctionName",
                "ThingGroupCrudFunctionName", "ShadowSyncerFunctionName", "CertificatePolicySyncFunctionName",
                "ParkEventFunctionName",
            },
        ),
    ],
    ids=["primary", "secondary"],
)  # fmt: skip
def test_stacks_output_what_the_tools_look_up(path: Path, outputs: set[str]) -> None:
    assert outputs <= set(load(path)["Outputs"])


# ------------------------------------------------------------------------------------------------ secondary
def test_stream_mapping_reports_partial_failures_bisects_and_keeps_exhausted_batches() -> None:
    mapping = resources(SECONDARY, "AWS::Lambda::EventSourceMapping")["DynamoTriggerMapping"]
    assert mapping == {
        "EventSourceArn": {"Ref": "ReplicationTableStreamArn"},
        "FunctionName": {"Ref": "DynamoTriggerFunction"},
        "BatchSize": {"Ref": "StreamBatchSize"},
        "MaximumBatchingWindowInSeconds": 1,
        "StartingPosition": "TRIM_HORIZON",
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": {"Ref": "StreamMaximumRetryAttempts"},
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["TriggerFailureQueue", "Arn"]}}},
        "ParallelizationFactor": {"Ref": "StreamParallelizationFactor"},
    }


def test_stream_arn_parameter_accepts_stream_arns_only() -> None:
    pattern = re.compile(load(SECONDARY)["Parameters"]["ReplicationTableStreamArn"]["AllowedPattern"])
    assert pattern.match("arn:aws:dynamodb:us-west-2:123456789012:table/IoTDRGlobalTable/stream/2024-05-01T10:00:00")
    assert pattern.match("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/t.1/stream/2024-05-01T10:00:00.123456")
    assert not pattern.match("arn:aws:dynamodb:us-west-2:123456789012:table/IoTDRGlobalTable")
    assert not pattern.match("arn:aws:kinesis:us-west-2:123456789012:stream/IoTDRGlobalTable")


def test_secondary_tables_key_and_recovery_settings() -> None:
    tables = resources(SECONDARY, "AWS::DynamoDB::Table")
    assert set(tables) == {"ReplicationStateTable", "DeadLetterTable"}
    for name, key in (("ReplicationStateTable", "resourceKey"), ("DeadLetterTable", "deadLetterId")):
        table = tables[name]
        assert table["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for path in (PRIMARY, SECONDARY):
        for queue in resources(path, "AWS::SQS::Queue").values():
            assert queue["MessageRetentionPeriod"] == 1209600


def test_state_machine_is_express_and_logs_errors_without_execution_data() -> None:
    machine = resources(SECONDARY, "AWS::StepFunctions::StateMachine")["ReplicationStateMachine"]
    assert machine["StateMachineType"] == "EXPRESS"
    logging_config = machine["LoggingConfiguration"]
    assert logging_config["Level"] == "ERROR"
    assert logging_config["IncludeExecutionData"] is False
    (destination,) = logging_config["Destinations"]
    assert ref_target(destination["CloudWatchLogsLogGroup"]["LogGroupArn"]) in resources(
        SECONDARY, "AWS::Logs::LogGroup"
    )


def item_processor(parameters: dict[str, str]) -> dict[str, Any]:
    """The states applied to each item: one inline Map over ``$.waves``, one at a time, of Maps over ``$.items``."""
    definition = state_machine_definition(parameters)
    assert definition["StartAt"] == "ApplyWaves"
    (only,) = definition["States"]
    waves = definition["States"][only]
    assert waves["Type"] == "Map"
    assert waves["ItemsPath"] == "$.waves"
    assert waves["MaxConcurrency"] == 1
    assert waves["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert waves["End"] is True
    assert waves["ItemProcessor"]["StartAt"] == "ApplyItems"
    (only,) = waves["ItemProcessor"]["States"]
    apply_items = waves["ItemProcessor"]["States"][only]
    assert apply_items["Type"] == "Map"
    assert apply_items["ItemsPath"] == "$.items"
    assert apply_items["MaxConcurrency"] == int(parameters["MapMaxConcurrency"])
    assert apply_items["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert apply_items["End"] is True
    return dict(apply_items["ItemProcessor"])


def test_state_machine_routes_exactly_the_documented_event_types_to_their_workers() -> None:
    definition = item_processor(parameter_defaults(SECONDARY))
    assert definition["StartAt"] == "ChooseEventType"
    choice = definition["States"]["ChooseEventType"]
    assert choice["Type"] == "Choice"
    routes: dict[str, str] = {}
    for rule in choice["Choices"]:
        for comparison in rule.get("Or", [rule]):
            if "StringEquals" in comparison:
                assert comparison["Variable"] == "$.eventType"
                assert comparison["StringEquals"] not in routes, "event type routed twice"
                routes[comparison["StringEquals"]] = rule["Next"]
    assert routes == ROUTES
    assert choice["Default"] == "UnknownEventType"
    unknown = definition["States"]["UnknownEventType"]
    assert unknown == {
        "Type": "Pass",
        "Result": {"Error": "UnknownEventType", "Cause": "no worker handles this eventType"},
        "ResultPath": "$.error",
        "Next": "ParkEvent",
    }
    for state, function in (
        ("ThingCrud", "ThingCrudFunction"),
        ("ThingTypeCrud", "ThingTypeCrudFunction"),
        ("ThingGroupCrud", "ThingGroupCrudFunction"),
        ("ShadowSyncer", "ShadowSyncerFunction"),
        ("CertificatePolicySync", "CertificatePolicySyncFunction"),
    ):
        parameters = definition["States"][state]["Parameters"]
        function_arn = f"arn:aws:lambda:us-west-2:123456789012:function:{function}"
        assert parameters == {"FunctionName": function_arn, "Payload.$": "$"}


def test_every_worker_retries_a_bounded_number_of_times_then_parks_the_event() -> None:
    custom = {
        "RetryIntervalSeconds": "3",
        "RetryBackoffRate": "1.5",
        "RetryMaxAttempts": "5",
        "RetryMaxDelaySeconds": "9",
    }
    states = item_processor({**parameter_defaults(SECONDARY), **custom})["States"]
    workers = {name for name in ROUTES.values()}
    for name in workers:
        state = states[name]
        assert state["Type"] == "Task"
        assert state["Resource"] == "arn:aws:states:::lambda:invoke"
        assert state["OutputPath"] == "$.Payload"
        assert state["End"] is True
        assert state["Retry"] == [
            {
                "ErrorEquals": WORKER_RETRY_ERRORS,
                "IntervalSeconds": 3,
                "BackoffRate": 1.5,
                "MaxAttempts": 5,
                "MaxDelaySeconds": 9,
                "JitterStrategy": "FULL",
            }
        ]
        # A missing dependency goes back to the stream (it may come in the records that follow); the rest is parked.
        assert state["Catch"] == [
            {"ErrorEquals": ["DependencyNotReady"], "ResultPath": "$.error", "Next": "AwaitDependency"},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ParkEvent"},
        ]
    assert states["AwaitDependency"] == {
        "Type": "Pass",
        "Comment": states["AwaitDependency"]["Comment"],
        "Parameters": {"notApplied": True, "error": "DependencyNotReady"},
        "End": True,
    }
    park = states["ParkEvent"]
    assert park["Parameters"] == {
        "FunctionName": "arn:aws:lambda:us-west-2:123456789012:function:ParkEventFunction",
        "Payload": {"event.$": "$", "executionArn.$": "$$.Execution.Id"},
    }
    # Parking retries whatever fails, and a parked item ends its branch without failing the other items.
    (retry,) = park["Retry"]
    assert retry["ErrorEquals"] == ["States.ALL"]
    assert (retry["MaxAttempts"], retry["IntervalSeconds"], retry["BackoffRate"], retry["MaxDelaySeconds"]) == (
        4,
        2,
        2,
        8,
    )
    assert park["OutputPath"] == "$.Payload"
    assert park["End"] is True
    # An item that cannot even be parked ends as "not applied", which the trigger reports for retry.
    assert park["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.parkError", "Next": "NotApplied"}]
    assert states["NotApplied"] == {
        "Type": "Pass",
        "Comment": states["NotApplied"]["Comment"],
        "Parameters": {"notApplied": True, "error.$": "$.parkError.Error"},
        "End": True,
    }
    assert set(states) == workers | {
        "ChooseEventType",
        "UnknownEventType",
        "ParkEvent",
        "NotApplied",
        "AwaitDependency",
    }


def test_the_workflow_output_has_one_result_per_item_in_each_wave() -> None:
    definition = state_machine_definition(parameter_defaults(SECONDARY))
    waves = definition["States"]["ApplyWaves"]
    items = waves["ItemProcessor"]["States"]["ApplyItems"]
    # Without a ResultPath a Map outputs its iterations' results in input order (workflow.apply_items reads them).
    assert "ResultPath" not in waves and "ResultPath" not in items and "OutputPath" not in waves


def test_retries_and_parking_fit_in_the_express_workflow_time_limit() -> None:
    parameters = load(SECONDARY)["Parameters"]
    worst_retries = parameters["RetryMaxAttempts"]["MaxValue"] * parameters["RetryMaxDelaySeconds"]["MaxValue"]
    (park_retry,) = item_processor(parameter_defaults(SECONDARY))["States"]["ParkEvent"]["Retry"]
    worst_parking = sum(
        min(park_retry["IntervalSeconds"] * park_retry["BackoffRate"] ** n, park_retry["MaxDelaySeconds"])
        for n in range(park_retry["MaxAttempts"])
    )
    assert len(set(APPLY_WAVE.values())) * (worst_retries + worst_parking) < 300


def test_ledger_entries_expire_after_every_way_an_old_event_can_still_arrive() -> None:
    table = resources(SECONDARY, "AWS::DynamoDB::Table")["ReplicationStateTable"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    shortest = load(SECONDARY)["Parameters"]["LedgerRetentionDays"]["MinValue"] * 86400
    item_ttl = int(parameter_defaults(PRIMARY)["ItemTtlSeconds"])
    stream_retention, express_limit = 86400, 300
    assert shortest > item_ttl + stream_retention + express_limit


def test_default_retries_catch_a_dependency_soon_yet_park_it_only_after_six_minutes_within_the_express_limit() -> None:
    defaults = parameter_defaults(SECONDARY)
    interval, rate = float(defaults["RetryIntervalSeconds"]), float(defaults["RetryBackoffRate"])
    attempts, longest = int(defaults["RetryMaxAttempts"]), float(defaults["RetryMaxDelaySeconds"])
    waits = [min(interval * rate**attempt, longest) for attempt in range(attempts)]
    executions = int(defaults["StreamMaximumRetryAttempts"]) + 1
    # A dependency another lane applies a few seconds later is caught soon: four tries within the first 8.2 s
    # (doubling intervals take 15 s, while the whole batch waits).
    assert sum(waits[:4]) <= 8.2
    # One that never comes goes back to the stream after each execution and is parked after at least 6 minutes.
    assert executions * sum(waits) >= 360
    # Three waves of retries and the parking (at most 22 s) fit in one Express execution (5 minutes).
    assert 3 * sum(waits) + 22 <= 300
    assert defaults["StreamBatchSize"] == "100"


# ------------------------------------------------------------------------------------------------ main template
def _referenced_attributes(value: Any, resource: str) -> set[str]:
    """Attributes of ``resource`` read with Fn::GetAtt or ${resource.Attribute} anywhere in ``value``."""
    text = json.dumps(value)
    found = set(re.findall(rf"\$\{{{resource}\.(\w+)\}}", text))
    found |= {m for m in re.findall(rf'"Fn::GetAtt": \["{resource}", "(\w+)"\]', text)}
    return found


def test_main_template_offers_the_regions_with_iot_core_and_dynamodb_and_requires_two_different_ones() -> None:
    import boto3

    session = boto3.session.Session()
    offered = set(session.get_available_regions("iot"))
    for service in ("dynamodb", "lambda", "stepfunctions", "codebuild", "apigateway", "secretsmanager"):
        offered &= set(session.get_available_regions(service))
    parameters = load(MAIN)["Parameters"]
    assert parameters["PrimaryRegion"]["AllowedValues"] == sorted(offered)
    assert parameters["SecondaryRegion"]["AllowedValues"] == sorted(offered)
    (rule,) = load(MAIN)["Rules"].values()
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PrimaryRegion"}, {"Ref": "SecondaryRegion"}]}]
    }


def test_launch_resource_is_answered_before_cloudformation_gives_up_and_is_deleted_before_what_it_needs() -> None:
    template = load(MAIN)
    launch = template["Resources"]["LaunchSolution"]
    function = template["Resources"]["LaunchFunction"]["Properties"]
    assert ref_target(launch["Properties"]["ServiceToken"]) == "LaunchFunction"
    assert function["Timeout"] == 900
    assert function["Timeout"] < launch["Properties"]["ServiceTimeout"] <= 1000
    # Deleted first: the uninstall needs the roles, the project and the log group while it runs.
    assert {
        "DeploymentRole", "CheckerIdentityDeploymentPolicy", "LaunchFunctionLogPolicy", "CodeBuildLogPolicy"
    } <= set(launch["DependsOn"])  # fmt: skip
    assert set(launch["Properties"]) == {
        "ServiceToken", "ServiceTimeout", "PrimaryRegion", "SecondaryRegion", "CreateR53HealthCheck", "HostedZoneId",
        "RecordName", "HealthCheckMode", "RateLimitPerIp", "AlarmEmail",
    }  # fmt: skip


def test_main_outputs_are_the_guides_and_read_only_attributes_the_launch_resource_returns() -> None:
    from iot_dr.deploy.launch_solution import OUTPUT_KEYS

    outputs = load(MAIN)["Outputs"]
    assert {
        "CFNIoTDRPrimaryStack", "CFNIoTDRSecondaryStack", "CFNR53HealthCheckPrimaryStack",
        "CFNR53HealthCheckSecondaryStack", "CodeBuildLaunchSolutionProject", "LambdaS3Url", "ToolsS3Url",
        "JupyterS3Url", "GlobalDynamoDBTableName", "StackPostfix", "IoTEndpointPrimary", "IoTEndpointSecondary",
    } <= set(outputs)  # fmt: skip
    assert _referenced_attributes(outputs, "LaunchSolution") <= set(OUTPUT_KEYS)
    assert outputs["ToolsS3Url"]["Value"] == {"Fn::Sub": "s3://${LaunchSolution.PrimaryBucket}/tools/"}
    assert outputs["LambdaS3Url"]["Value"] == {"Fn::Sub": "s3://${LaunchSolution.PrimaryBucket}/lambda/"}
    for name, output in outputs.items():
        assert output["Description"], name


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_every_pass_role_names_the_service_it_passes_to(path: Path) -> None:
    for name, statement in identity_statements(path):
        if "iam:PassRole" in as_list(statement["Action"]):
            assert statement["Condition"]["StringEquals"]["iam:PassedToService"], name
            assert "*" not in as_list(statement["Resource"]), name


def test_main_roles_reach_only_this_deployments_buckets_and_the_solution_source() -> None:
    stack_uuid = {"Suffix": {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}}
    for role in ("CodeBuildRole", "LaunchFunctionRole"):
        for statement in role_statements(MAIN, role):
            for resource in as_list(statement["Resource"]):
                sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
                if isinstance(sub, str) and sub.startswith("arn:${AWS::Partition}:s3:::"):
                    assert sub.startswith("arn:${AWS::Partition}:s3:::${ArtifactBucketPrefix}-${AWS::Region}"), sub
                elif isinstance(sub, list):
                    assert re.fullmatch(
                        r"arn:\$\{AWS::Partition\}:s3:::iot-dr-(primary|secondary)-\$\{Suffix\}(/\*)?", sub[0]
                    )
                    assert sub[1] == stack_uuid


def test_regional_stacks_are_deployed_and_deleted_with_a_service_role_only_cloudformation_may_assume() -> None:
    role = load(MAIN)["Resources"]["DeploymentRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    project = load(MAIN)["Resources"]["LaunchProject"]["Properties"]
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert variables["DEPLOYMENT_ROLE_ARN"] == {"Fn::GetAtt": ["DeploymentRole", "Arn"]}
    launch_actions = {a for s in role_statements(MAIN, "LaunchFunctionRole") for a in as_list(s["Action"])}
    assert not {a for a in launch_actions if a.startswith(("iam:", "lambda:", "kms:"))}
