"""The health-checker stack: lint-clean, secret never exposed, Route 53 settings and records as documented."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from iot_dr.health.health_check import HealthCheckSettings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deployment/disaster-recovery-for-aws-iot-r53-health-checker.template"
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return json.loads(json.dumps(decoded))


def resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]


def https_config(template: dict[str, Any]) -> dict[str, Any]:
    """The Route 53 health check's HTTPS form (HealthCheckMode https-secret)."""
    condition, _canary, https = resource(template, "HealthCheck")["Properties"]["HealthCheckConfig"]["Fn::If"]
    assert condition == "UseCanary"
    return dict(https)


def test_cfn_lint_reports_nothing_in_any_supported_region() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is not installed"
    result = subprocess.run(
        [cfn_lint, "--regions", *REGIONS, "--", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, ""), result.stdout + result.stderr


def test_the_secret_is_only_resolved_inside_the_route53_health_check(template: dict[str, Any]) -> None:
    text = TEMPLATE.read_text()
    assert text.count("{{resolve:secretsmanager:") == 1
    path = https_config(template)["ResourcePath"]
    reference = "{{resolve:secretsmanager:${CredentialsSecret}:SecretString:healthCheckSecret}}"
    assert path == {"Fn::Sub": f"/v1/health-check?hashme={reference}"}
    assert "CheckerCredentials" in resource(template, "HealthCheck")["DependsOn"], "resolved before it was written"
    outputs = json.dumps(template["Outputs"])
    assert "resolve" not in outputs and "hashme" not in outputs
    for name, body in template["Resources"].items():
        if body["Type"] == "AWS::Lambda::Function":
            assert "resolve" not in json.dumps(body["Properties"]["Environment"]), name


def test_route53_timing_parameters_default_to_30_seconds_times_3_and_stay_in_route53_limits(
    template: dict[str, Any],
) -> None:
    parameters = template["Parameters"]
    assert parameters["RequestInterval"]["Default"] == 30
    assert parameters["RequestInterval"]["AllowedValues"] == [10, 30]
    threshold = parameters["FailureThreshold"]
    assert (threshold["Default"], threshold["MinValue"], threshold["MaxValue"]) == (3, 1, 10)
    for name in ("RequestInterval", "FailureThreshold"):
        assert re.search(r"\d+ s", parameters[name]["Description"]), f"{name} documents no failover budget"
    config = https_config(template)
    assert config["RequestInterval"] == {"Ref": "RequestInterval"}
    assert config["FailureThreshold"] == {"Ref": "FailureThreshold"}
    assert (config["Type"], config["Port"], config["EnableSNI"]) == ("HTTPS", 443, True)


def test_canary_mode_checks_the_alarm_on_the_scheduled_probe_and_uses_no_secret(template: dict[str, Any]) -> None:
    condition, canary, _https = resource(template, "HealthCheck")["Properties"]["HealthCheckConfig"]["Fn::If"]
    alarm = resource(template, "CanaryAlarm")

    assert canary["Type"] == "CLOUDWATCH_METRIC"
    assert canary["AlarmIdentifier"]["Name"] == {"Ref": "CanaryAlarm"}
    assert canary["InsufficientDataHealthStatus"] == "Unhealthy"
    assert "resolve" not in json.dumps(canary)
    assert (alarm["Properties"]["Namespace"], alarm["Properties"]["MetricName"]) == ("IoTDR", "MqttHealthy")
    assert alarm["Properties"]["TreatMissingData"] == "breaching"
    schedule = resource(template, "CanarySchedule")
    assert schedule["Condition"] == alarm["Condition"] == condition
    assert schedule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["HealthCheckerFunction", "Arn"]}
    environment = resource(template, "HealthCheckerFunction")["Properties"]["Environment"]["Variables"]
    assert environment["ALLOW_QUERY_SECRET"] == {"Fn::If": ["UseQuerySecret", "true", "false"]}


def test_api_routes_get_health_check_on_stage_v1_to_the_checker_function(template: dict[str, Any]) -> None:
    method = resource(template, "HealthCheckMethod")["Properties"]
    assert method["HttpMethod"] == "GET"
    assert method["Integration"]["Type"] == "AWS_PROXY"
    assert "${HealthCheckerFunction.Arn}" in method["Integration"]["Uri"]["Fn::Sub"]
    assert resource(template, "HealthCheckResource")["Properties"]["PathPart"] == "health-check"
    assert resource(template, "HealthCheckStage")["Properties"]["StageName"] == "v1"


def test_stage_neither_traces_nor_caches_the_requests_that_carry_the_secret(template: dict[str, Any]) -> None:
    # X-Ray records the request URL with its query string, where Route 53 presents ?hashme=; a cache answers stale.
    stage = resource(template, "HealthCheckStage")["Properties"]
    assert not stage.get("TracingEnabled", False)
    assert not stage.get("CacheClusterEnabled", False)
    for setting in stage["MethodSettings"]:
        assert not setting.get("CachingEnabled", False)
    access_log = stage["AccessLogSetting"]["Fn::If"][1]
    assert "$context.path" in access_log["Format"]
    assert not re.search(r"querystring|requestOverride|\$input", access_log["Format"], re.IGNORECASE)


def test_query_string_secret_is_enabled_only_together_with_the_route53_health_check(template: dict[str, Any]) -> None:
    env = resource(template, "HealthCheckerFunction")["Properties"]["Environment"]["Variables"]
    assert env["ALLOW_QUERY_SECRET"] == {"Fn::If": ["UseQuerySecret", "true", "false"]}
    assert resource(template, "HealthCheck")["Condition"] == "CreateHealthCheck"


def test_checker_environment_builds_valid_settings(template: dict[str, Any]) -> None:
    env = resource(template, "HealthCheckerFunction")["Properties"]["Environment"]["Variables"]
    concrete = {name: value if isinstance(value, str) else "example" for name, value in env.items()}
    concrete.update({"MESSAGE_COUNT": "2", "ALLOW_QUERY_SECRET": "true", "AWS_REGION": "us-east-1"})

    settings = HealthCheckSettings.from_env(concrete)

    assert settings.port == 8883
    assert settings.total_timeout < 2.0
    assert settings.credentials_secret_arn == "example"
    assert env["CREDENTIALS_SECRET_ARN"] == {"Ref": "CredentialsSecret"}
    assert env["IOT_ENDPOINT"] == {"Fn::GetAtt": ["CheckerKey", "Endpoint"]}
    assert env["CLIENT_ID"] == {"Ref": "CheckerThing"}
    assert resource(template, "HealthCheckerFunction")["DependsOn"] == "CheckerCredentials", (
        "serves before its certificate"
    )


def test_failover_records_point_at_this_region_with_its_health_check(template: dict[str, Any]) -> None:
    record = resource(template, "FailoverRecord")
    assert record["Condition"] == "CreateFailoverRecords"
    props = record["Properties"]
    assert (props["Type"], props["Failover"], props["HealthCheckId"]) == (
        "CNAME",
        {"Ref": "FailoverRole"},
        {"Ref": "HealthCheck"},
    )
    assert props["ResourceRecords"] == [{"Fn::GetAtt": ["CheckerKey", "Endpoint"]}]
    assert template["Parameters"]["RecordTtl"]["Default"] <= 60


def test_region_txt_record_holds_the_json_devices_parse(template: dict[str, Any]) -> None:
    record = resource(template, "RegionRoleRecord")
    assert record["Condition"] == "CreateRegionRecord"
    assert template["Conditions"]["CreateRegionRecord"] == {
        "Fn::And": [{"Condition": "CreateFailoverRecords"}, {"Condition": "IsPrimary"}]
    }
    props = record["Properties"]
    assert props["Name"] == {"Fn::Sub": "_${RecordName}"}
    value = props["ResourceRecords"][0]["Fn::Sub"]
    presented = value.replace("${AWS::Region}", "us-east-1").replace("${PairedRegion}", "us-west-2")
    assert presented.startswith('"') and presented.endswith('"')
    assert json.loads(presented[1:-1].replace('\\"', '"')) == {"primary": "us-east-1", "secondary": "us-west-2"}


def test_the_checker_identity_is_native_resources_and_no_role_here_may_change_a_certificate(
    template: dict[str, Any],
) -> None:
    certificate = resource(template, "CheckerCertificate")
    assert certificate["Type"] == "AWS::IoT::Certificate"
    assert certificate["Properties"] == {
        "CertificateSigningRequest": {"Fn::GetAtt": ["CheckerKey", "CertificateSigningRequest"]},
        "Status": "ACTIVE",
    }
    principal = {"Fn::GetAtt": ["CheckerCertificate", "Arn"]}
    assert resource(template, "CheckerPolicyAttachment")["Properties"] == {
        "PolicyName": {"Ref": "CheckerPolicy"},
        "Principal": principal,
    }
    assert resource(template, "CheckerThingAttachment")["Properties"] == {
        "ThingName": {"Ref": "CheckerThing"},
        "Principal": principal,
    }
    assert resource(template, "CheckerThing")["Properties"]["ThingName"]["Fn::Join"][1][0] == "iot-dr-r53-checker-"
    for name, body in template["Resources"].items():
        policies = body["Properties"].get("Policies", []) if body["Type"] == "AWS::IAM::Role" else []
        if body["Type"] == "AWS::IAM::Policy":
            policies = [body["Properties"]]
        for statement in (s for policy in policies for s in policy["PolicyDocument"]["Statement"]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            iot_actions = {a for a in actions if a.startswith("iot:")}
            # Reading the endpoint's name, and reading exactly the checker's own certificate, is all any role here does.
            assert iot_actions <= {"iot:DescribeEndpoint", "iot:DescribeCertificate"}, (name, iot_actions)
            if "iot:DescribeCertificate" in iot_actions:
                assert statement["Resource"] == principal, name


def test_nothing_secret_is_output_and_every_output_is_described(template: dict[str, Any]) -> None:
    for name, output in template["Outputs"].items():
        assert output["Description"], name
        assert output["Value"] != {"Fn::GetAtt": ["CredentialsSecret", "SecretString"]}
    assert set(template["Outputs"]) == {
        "HealthCheckUrl",
        "CredentialsSecretArn",
        "CheckerThingName",
        "IoTEndpoint",
        "HealthCheckerFunctionName",
        "HealthCheckId",
        "AlarmTopicArn",
    }


def test_every_taggable_resource_carries_the_solution_tag(template: dict[str, Any]) -> None:
    tag_property = {
        "AWS::KMS::Key": "Tags",
        "AWS::SecretsManager::Secret": "Tags",
        "AWS::IAM::Role": "Tags",
        "AWS::Lambda::Function": "Tags",
        "AWS::Logs::LogGroup": "Tags",
        "AWS::ApiGateway::RestApi": "Tags",
        "AWS::ApiGateway::Stage": "Tags",
        "AWS::Route53::HealthCheck": "HealthCheckTags",
    }
    tagged = 0
    for name, body in template["Resources"].items():
        if body["Type"] in tag_property:
            assert {"Key": "Solution", "Value": "IoTDR"} in body["Properties"][tag_property[body["Type"]]], name
            tagged += 1
    assert tagged == 12
