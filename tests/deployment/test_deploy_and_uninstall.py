"""The deployment path end to end on the local cloud: the launcher CodeBuild runs, then the uninstaller.

build-s3-dist.sh builds the assets, the CodeBuild source it makes runs its buildspec.yml, whose launcher deploys
the regional stacks and health checkers, a device replicates through what it deployed, and after the uninstaller the
account holds exactly what it held before the deployment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iot_dr_cli import launcher, uninstall
from iot_dr_local.cloud import LocalCloud

REPO = Path(__file__).resolve().parents[2]
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
# CloudFormation's own response bucket for custom resources is not part of the user's account.
RESPONSE_BUCKET_PREFIX = "cloudformation-custom-resource-response-"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    local = LocalCloud(PRIMARY, SECONDARY)
    local.start()
    try:
        local.prepare_account()
        yield local
    finally:
        local.stop()


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        time.sleep(0.1)
    return value


def _names(pages: Iterator[dict[str, Any]], key: str, field: str) -> set[str]:
    return {str(item[field]) for page in pages for item in page.get(key, [])}


def inventory(cloud: LocalCloud) -> dict[str, set[str]]:
    """Everything of each kind the solution creates, listed through the public APIs of both regions."""
    found: dict[str, set[str]] = {}
    s3 = cloud.client("s3", PRIMARY)
    found["buckets"] = {
        b["Name"] for b in s3.list_buckets()["Buckets"] if not b["Name"].startswith(RESPONSE_BUCKET_PREFIX)
    }
    iam = cloud.client("iam", PRIMARY)
    found["roles"] = _names(iam.get_paginator("list_roles").paginate(), "Roles", "RoleName")
    route53 = cloud.client("route53", PRIMARY)
    found["health checks"] = {h["Id"] for h in route53.list_health_checks()["HealthChecks"]}
    for region in (PRIMARY, SECONDARY):

        def add(kind: str, names: set[str], region: str = region) -> None:
            found[f"{kind} in {region}"] = names

        cloudformation = cloud.client("cloudformation", region)
        add("stacks", {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]})
        add("tables", set(cloud.client("dynamodb", region).list_tables()["TableNames"]))
        lam = cloud.client("lambda", region)
        add("functions", _names(lam.get_paginator("list_functions").paginate(), "Functions", "FunctionName"))
        add("layers", {layer["LayerName"] for layer in lam.list_layers()["Layers"]})
        add("mappings", {m["UUID"] for m in lam.list_event_source_mappings()["EventSourceMappings"]})
        iot = cloud.client("iot", region)
        add("things", {t["thingName"] for t in iot.list_things()["things"]})
        add("certificates", {c["certificateId"] for c in iot.list_certificates()["certificates"]})
        add("policies", {p["policyName"] for p in iot.list_policies()["policies"]})
        add("topic rules", {r["ruleName"] for r in iot.list_topic_rules()["rules"]})
        states = cloud.client("stepfunctions", region)
        add("state machines", {m["name"] for m in states.list_state_machines()["stateMachines"]})
        add("queues", set(cloud.client("sqs", region).list_queues().get("QueueUrls", [])))
        add("secrets", {s["Name"] for s in cloud.client("secretsmanager", region).list_secrets()["SecretList"]})
        add("rest apis", {a["name"] for a in cloud.client("apigateway", region).get_rest_apis()["items"]})
        add("event rules", {r["Name"] for r in cloud.client("events", region).list_rules()["Rules"]})
        kms = cloud.client("kms", region)
        # AWS-managed keys (alias/aws/dynamodb and friends) belong to the services; moto labels them CUSTOMER.
        aliases = kms.list_aliases()["Aliases"]
        managed = {a.get("TargetKeyId") for a in aliases if a["AliasName"].startswith("alias/aws/")}
        metadata = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
        add("usable keys", {m["KeyId"] for m in metadata if m["KeyState"] == "Enabled" and m["KeyId"] not in managed})
    return found


def toolsrc_variables(text: str) -> dict[str, str]:
    variables = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        variables[name] = value.strip("'")
    return variables


def run_build_phase(source: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What CodeBuild does with the solution zip: run buildspec.yml's build commands in its directory."""
    buildspec = yaml.safe_load((source / "buildspec.yml").read_text())
    script = "\n".join(["set -euo pipefail", *buildspec["phases"]["build"]["commands"]])
    return subprocess.run(
        ["bash", "-c", script], cwd=source, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


def test_launcher_deploys_replicates_and_uninstall_leaves_nothing_behind(cloud: LocalCloud, tmp_path: Path) -> None:
    before = inventory(cloud)
    dist = subprocess.run(
        ["bash", str(REPO / "deployment/build-s3-dist.sh"), "local-solutions", "disaster-recovery-for-aws-iot",
         "v2.0.0", "--no-vendor", "--output", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dist.returncode == 0, dist.stderr
    source = tmp_path / "codebuild-source"
    with zipfile.ZipFile(tmp_path / "dist/regional-s3-assets/iot-dr-solution.zip") as archive:
        archive.extractall(source)
    postfix, suffix = time.strftime("%Y%m%d%H%M%S"), str(uuid.uuid4())
    names = launcher.LaunchConfig(PRIMARY, SECONDARY, postfix, suffix)
    # The variables the launch custom resource and the CodeBuild project set.
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "CODEBUILD_SRC_DIR": str(source),
        "PRIMARY_REGION": PRIMARY,
        "SECONDARY_REGION": SECONDARY,
        "STACK_POSTFIX": postfix,
        "BUCKET_SUFFIX": suffix,
        "CREATE_R53_HEALTH_CHECK": "yes",
        "HOSTED_ZONE_ID": "",
        "RECORD_NAME": "",
        "HEALTH_CHECK_MODE": "https-secret",
        "RATE_LIMIT_PER_IP": "200",
        "ALARM_EMAIL": "ops@example.com",
        "ARTIFACT_PREFIX": "disaster-recovery-for-aws-iot/v2.0.0/",
        "DEPLOYMENT_ROLE_ARN": "",
    }

    started = time.monotonic()
    build = run_build_phase(source, environment)
    deploy_seconds = time.monotonic() - started

    assert build.returncode == 0, build.stdout + build.stderr
    assert f"deployed with stack postfix {postfix}" in build.stdout
    print(f"deploy took {deploy_seconds:.1f} s")
    deployed = {
        region: {
            s["StackName"]: s["StackStatus"] for s in cloud.client("cloudformation", region).describe_stacks()["Stacks"]
        }
        for region in (PRIMARY, SECONDARY)
    }
    assert deployed == {
        PRIMARY: {names.primary_stack: "CREATE_COMPLETE", names.health_checker_stack: "CREATE_COMPLETE"},
        SECONDARY: {names.secondary_stack: "CREATE_COMPLETE", names.health_checker_stack: "CREATE_COMPLETE"},
    }
    # The main stack's choices reached the regional stacks.
    for region, stack, expected in (
        (PRIMARY, names.primary_stack, {"AlarmEmail": "ops@example.com"}),
        (SECONDARY, names.secondary_stack, {"AlarmEmail": "ops@example.com"}),
        (PRIMARY, names.health_checker_stack, {"AlarmEmail": "ops@example.com", "RateLimitPerIp": "200"}),
        (SECONDARY, names.health_checker_stack, {"HealthCheckMode": "https-secret", "RateLimitPerIp": "200"}),
    ):
        described = cloud.client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"][0]
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
        assert expected.items() <= parameters.items(), (stack, parameters)
    for region in (PRIMARY, SECONDARY):
        table = cloud.client("dynamodb", region).describe_table(TableName=names.table_name)["Table"]
        assert table["TableStatus"] == "ACTIVE" and table["StreamSpecification"]["StreamEnabled"]
    s3 = cloud.client("s3", PRIMARY)
    rc = s3.get_object(Bucket=names.bucket(PRIMARY), Key="tools/toolsrc")["Body"].read().decode()
    variables = toolsrc_variables(rc)
    # moto invents a new data endpoint on every DescribeEndpoint call; AWS returns the account's one.
    for name, region in (("IOT_ENDPOINT_PRIMARY", PRIMARY), ("IOT_ENDPOINT_SECONDARY", SECONDARY)):
        assert re.fullmatch(rf"[a-z0-9]+-ats\.iot\.{region}\.amazonaws\.com", variables.pop(name))
    role = cloud.client("iam", PRIMARY).get_role(RoleName=variables.pop("ARN_IOT_PROVISIONING_ROLE").split("/")[-1])
    assert "iot.amazonaws.com" in json.dumps(role["Role"]["AssumeRolePolicyDocument"])
    assert variables == {
        "REGION": PRIMARY,
        "S3_BUCKET": names.bucket(PRIMARY),
        "DYNAMODB_GLOBAL_TABLE": names.table_name,
        "PRIMARY_REGION": PRIMARY,
        "SECONDARY_REGION": SECONDARY,
    }
    tools = {o["Key"] for o in s3.list_objects_v2(Bucket=names.bucket(PRIMARY), Prefix="tools/")["Contents"]}
    assert "tools/iot-dr-pubsub.py" in tools
    for region in (PRIMARY, SECONDARY):
        encryption = cloud.client("s3", region).get_bucket_encryption(Bucket=names.bucket(region))
        assert encryption["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        assert json.loads(cloud.client("s3", region).get_bucket_policy(Bucket=names.bucket(region))["Policy"])

    checks = {c["HealthCheckConfig"]["FullyQualifiedDomainName"].split(".")[2]: c["HealthCheckConfig"] for c in
              cloud.client("route53", PRIMARY).list_health_checks()["HealthChecks"]}  # fmt: skip
    assert set(checks) == {PRIMARY, SECONDARY}
    for region in (PRIMARY, SECONDARY):
        outputs = _outputs(cloud, region, names.health_checker_stack)
        secret = cloud.client("secretsmanager", region).get_secret_value(SecretId=outputs["CredentialsSecretArn"])
        # The {{resolve:secretsmanager:...}} reference in the template was resolved to the checker's secret.
        credentials = json.loads(secret["SecretString"])
        assert checks[region]["ResourcePath"] == "/v1/health-check?hashme=" + credentials["healthCheckSecret"]
        # The checker's certificate is CloudFormation's, made from the CSR of the key that stays in the secret.
        iot = cloud.client("iot", region)
        (principal,) = iot.list_thing_principals(thingName=outputs["CheckerThingName"])["principals"]
        description = iot.describe_certificate(certificateId=principal.rsplit("/", 1)[-1])["certificateDescription"]
        assert (description["status"], description["certificatePem"]) == ("ACTIVE", credentials["certificatePem"])
        certified = x509.load_pem_x509_certificate(credentials["certificatePem"].encode()).public_key()
        key = serialization.load_pem_private_key(credentials["privateKey"].encode(), password=None)
        assert certified.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
        policies = iot.list_attached_policies(target=principal)["policies"]
        assert [p["policyName"] for p in policies] == [f"{outputs['CheckerThingName']}-policy"]

    primary_iot, secondary_iot = cloud.client("iot", PRIMARY), cloud.client("iot", SECONDARY)
    primary_iot.create_thing(thingName="deployment-probe", attributePayload={"attributes": {"kind": "probe"}})
    keys = primary_iot.create_keys_and_certificate(setAsActive=True)
    primary_iot.attach_thing_principal(thingName="deployment-probe", principal=keys["certificateArn"])
    replica = eventually(lambda: _thing_with_principal(secondary_iot, "deployment-probe"), timeout=60)
    assert replica == (keys["certificateId"], {"kind": "probe"})
    # The primary health checker's identity stays there: the pipeline that just replicated the probe skipped it.
    checker_thing = _outputs(cloud, PRIMARY, names.health_checker_stack)["CheckerThingName"]
    with pytest.raises(secondary_iot.exceptions.ResourceNotFoundException):
        secondary_iot.describe_thing(thingName=checker_thing)

    primary_iot.detach_thing_principal(thingName="deployment-probe", principal=keys["certificateArn"])
    primary_iot.delete_thing(thingName="deployment-probe")
    primary_iot.update_certificate(certificateId=keys["certificateId"], newStatus="INACTIVE")
    primary_iot.delete_certificate(certificateId=keys["certificateId"])
    eventually(lambda: _certificate_gone(secondary_iot, keys["certificateId"]), timeout=60)
    assert cloud.wait_idle(60)

    started = time.monotonic()
    code = uninstall.main(
        ["--primary-region", PRIMARY, "--secondary-region", SECONDARY, "--stack-postfix", postfix,
         "--bucket-suffix", suffix, "--timeout", "120"]
    )  # fmt: skip
    print(f"uninstall took {time.monotonic() - started:.1f} s")

    assert code == 0
    assert cloud.wait_idle(30)
    after = inventory(cloud)
    leftovers = {kind: sorted(after[kind] - before[kind]) for kind in after if after[kind] - before[kind]}
    assert not leftovers, json.dumps(leftovers, indent=1)


def _outputs(cloud: LocalCloud, region: str, stack: str) -> dict[str, str]:
    described = cloud.client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def _thing_with_principal(iot: Any, thing: str) -> tuple[str, dict[str, str]] | None:
    try:
        principals = iot.list_thing_principals(thingName=thing)["principals"]
        attributes = iot.describe_thing(thingName=thing)["attributes"]
    except iot.exceptions.ResourceNotFoundException:
        return None
    return (principals[0].rsplit("/", 1)[-1], attributes) if principals else None


def _certificate_gone(iot: Any, certificate_id: str) -> bool:
    try:
        iot.describe_certificate(certificateId=certificate_id)
    except iot.exceptions.ResourceNotFoundException:
        return True
    return False
