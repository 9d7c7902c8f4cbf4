"""``create-device-pca.sh`` against the local cloud, with the AWS CLI and openssl as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from local_cloud_support import PRIMARY, SECONDARY
from private_ca_support import activate, create_pca, new_root

from iot_dr_local.cloud import LocalCloud

SCRIPT = Path(__file__).resolve().parents[2] / "source" / "tools" / "create-device-pca.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("aws") is None or shutil.which("openssl") is None or shutil.which("jq") is None,
    reason="the script needs the AWS CLI, openssl and jq",
)


@pytest.fixture(scope="module")
def pca(cloud: LocalCloud) -> tuple[str, bytes]:
    """An ACTIVE Private CA in the secondary region: the script must use the PCA's region for PCA calls."""
    acm_pca = cloud.client("acm-pca", SECONDARY)
    arn = create_pca(acm_pca)
    return arn, activate(acm_pca, arn, new_root())


# Should an AWS CLI ignore AWS_ENDPOINT_URL, its calls end at a closed local port instead of reaching AWS.
NO_AWS = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}


def run(tmp_path: Path, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **NO_AWS, "AWS_DEFAULT_REGION": PRIMARY, **environment}
    return subprocess.run([str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_creates_the_thing_with_a_pca_certificate_registered_active_and_a_policy_for_the_thing_only(
    cloud: LocalCloud, pca: tuple[str, bytes], tmp_path: Path
) -> None:
    arn, ca_pem = pca

    result = run(tmp_path, "pca-device-1", PCA_ARN=arn)

    assert result.returncode == 0, result.stderr
    certificate = x509.load_pem_x509_certificate((tmp_path / "pca-device-1.certificate.pem").read_bytes())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    assert (tmp_path / "pca-device-1.private.key").stat().st_mode & 0o077 == 0
    iot = cloud.client("iot", PRIMARY)
    [principal] = iot.list_thing_principals(thingName="pca-device-1")["principals"]
    description = iot.describe_certificate(certificateId=principal.rsplit("/", 1)[1])["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert x509.load_pem_x509_certificate(description["certificatePem"].encode()) == certificate
    [policy] = iot.list_attached_policies(target=principal)["policies"]
    assert policy["policyName"] == "pca-device-1_Policy"
    document = json.loads(iot.get_policy(policyName="pca-device-1_Policy")["policyDocument"])
    resources = [r for statement in document["Statement"] for r in _as_list(statement["Resource"])]
    assert all("pca-device-1" in resource for resource in resources)
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_an_existing_policy_is_attached_instead_of_a_new_one(
    cloud: LocalCloud, pca: tuple[str, bytes], tmp_path: Path
) -> None:
    iot = cloud.client("iot", PRIMARY)
    iot.create_policy(policyName="fleet-policy", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))

    result = run(tmp_path, "pca-device-2", "fleet-policy", PCA_ARN=pca[0])

    assert result.returncode == 0, result.stderr
    [principal] = iot.list_thing_principals(thingName="pca-device-2")["principals"]
    assert [p["policyName"] for p in iot.list_attached_policies(target=principal)["policies"]] == ["fleet-policy"]


@pytest.mark.parametrize(
    ("args", "environment", "exit_code", "message"),
    [
        ((), {"PCA_ARN": "x"}, 2, "expected THING_NAME [POLICY_NAME]"),
        (("a/b",), {"PCA_ARN": "x"}, 2, "invalid thing name a/b"),
        (("thing",), {}, 2, "PCA_ARN must be set to the ARN of your private CA"),
        (("thing",), {"PCA_ARN": "arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/0000"}, 1, "not found"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_its_exit_code(
    cloud: LocalCloud,
    tmp_path: Path,
    args: tuple[str, ...],
    environment: dict[str, str],
    exit_code: int,
    message: str,
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PCA_ARN"}
    result = subprocess.run(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env={**env, **NO_AWS, "AWS_DEFAULT_REGION": PRIMARY, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == exit_code
    assert message in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_an_existing_thing_is_not_touched(cloud: LocalCloud, pca: tuple[str, bytes], tmp_path: Path) -> None:
    cloud.client("iot", PRIMARY).create_thing(thingName="pca-device-3")

    result = run(tmp_path, "pca-device-3", PCA_ARN=pca[0])

    assert result.returncode == 1
    assert result.stderr.strip() == "create-device-pca.sh: error: thing pca-device-3 already exists in us-east-1"
    assert cloud.client("iot", PRIMARY).list_thing_principals(thingName="pca-device-3")["principals"] == []
    assert not (tmp_path / "pca-device-3.private.key").exists()


def test_an_existing_default_policy_stops_the_script_before_anything_is_issued(
    cloud: LocalCloud, pca: tuple[str, bytes], tmp_path: Path
) -> None:
    iot = cloud.client("iot", PRIMARY)
    iot.create_policy(
        policyName="pca-device-4_Policy", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )

    result = run(tmp_path, "pca-device-4", PCA_ARN=pca[0])

    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "policy pca-device-4_Policy already exists in us-east-1: pass it as POLICY_NAME to attach it"
    )
    assert not (tmp_path / "pca-device-4.private.key").exists()


def test_a_refused_aws_call_ends_with_exit_code_1_and_names_the_command(
    cloud: LocalCloud, pca: tuple[str, bytes], tmp_path: Path
) -> None:
    cloud.faults.fail("iot", "create_thing", PRIMARY, times=20, code="InvalidRequestException")
    try:
        result = run(tmp_path, "pca-device-5", PCA_ARN=pca[0])
    finally:
        cloud.faults.reset()

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("create-device-pca.sh: error: failed: ")
    assert "create-thing" in result.stderr.strip().splitlines()[-1]
    things = cloud.client("iot", PRIMARY).list_things()["things"]
    assert "pca-device-5" not in [thing["thingName"] for thing in things]


def test_a_disabled_private_ca_issues_nothing(cloud: LocalCloud, pca: tuple[str, bytes], tmp_path: Path) -> None:
    acm_pca = cloud.client("acm-pca", SECONDARY)
    acm_pca.update_certificate_authority(CertificateAuthorityArn=pca[0], Status="DISABLED")
    try:
        result = run(tmp_path, "pca-device-6", PCA_ARN=pca[0])
    finally:
        acm_pca.update_certificate_authority(CertificateAuthorityArn=pca[0], Status="ACTIVE")

    assert result.returncode == 1
    assert result.stderr.strip() == f"create-device-pca.sh: error: private CA {pca[0]} is DISABLED, not ACTIVE"
