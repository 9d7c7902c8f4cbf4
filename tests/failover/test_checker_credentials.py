"""The health checker's credentials: its key made into a CSR and kept in Secrets Manager, the certificate
CloudFormation creates from that CSR, and that certificate added to the secret, against the local cloud's IoT and
Secrets Manager; custom-resource answers go through a real HTTP PUT."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from local_cloud_support import PRIMARY

from iot_dr.health import checker_credentials, checker_identity
from iot_dr_local.cloud import LocalCloud


@dataclass
class Context:
    remaining_ms: int = 60_000
    log_stream_name: str = "2024/01/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class CloudFormationEndpoint:
    """Stands in for CloudFormation's pre-signed response URL and records every PUT it receives."""

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.responses.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/response?signature=abc"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationEndpoint]:
    endpoint = CloudFormationEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def secret_arn(cloud: LocalCloud) -> str:
    # CloudFormation's placeholder value, as AWS::SecretsManager::Secret with GenerateSecretString leaves it.
    created = cloud.client("secretsmanager", PRIMARY).create_secret(
        Name=f"checker-{uuid.uuid4()}", SecretString="x" * 32
    )
    return str(created["ARN"])


def thing_name() -> str:
    return f"iot-dr-r53-checker-{uuid.uuid4()}"


def event(resource_type: str, request_type: str, url: str, **properties: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": f"arn:aws:cloudformation:{PRIMARY}:123456789012:stack/checker/{uuid.uuid4()}",
        "RequestId": f"request-{uuid.uuid4()}",
        "LogicalResourceId": "CheckerKey"
        if resource_type == checker_credentials.KEY_RESOURCE
        else "CheckerCredentials",
        "ResourceType": resource_type,
        "ResourceProperties": {"ServiceToken": "arn", **properties},
    }


def key_request(request_type: str, url: str, thing: str, secret_arn: str) -> dict[str, Any]:
    """A request for the checker's key resource (the key and CSR kept in ``secret_arn``)."""
    return event(checker_credentials.KEY_RESOURCE, request_type, url, ThingName=thing, CredentialsSecretArn=secret_arn)


def certificate_request(url: str, certificate_id: str, secret_arn: str) -> dict[str, Any]:
    """A Create request for the resource that adds certificate ``certificate_id`` to the secret."""
    properties = {"CertificateId": certificate_id, "CredentialsSecretArn": secret_arn}
    return event(checker_credentials.CERTIFICATE_RESOURCE, "Create", url, **properties)


def handle(cloud: LocalCloud, request: dict[str, Any]) -> None:
    checker_credentials.handle_event(
        request, Context(), cloud.client("iot", PRIMARY), cloud.client("secretsmanager", PRIMARY)
    )


def stored(cloud: LocalCloud, secret_arn: str) -> dict[str, str]:
    return dict(
        json.loads(cloud.client("secretsmanager", PRIMARY).get_secret_value(SecretId=secret_arn)["SecretString"])
    )


def test_the_key_stays_in_the_secret_and_only_its_csr_and_the_endpoint_reach_cloudformation(
    cloud: LocalCloud, cloudformation: CloudFormationEndpoint, secret_arn: str
) -> None:
    thing = thing_name()
    handle(cloud, key_request("Create", cloudformation.url, thing, secret_arn))

    [response] = cloudformation.responses
    assert response["Status"] == "SUCCESS", response.get("Reason")
    assert set(response["Data"]) == {"CertificateSigningRequest", "Endpoint"}
    assert response["Data"]["Endpoint"].endswith(f"-ats.iot.{PRIMARY}.amazonaws.com")
    secret = stored(cloud, secret_arn)
    assert set(secret) == {"privateKey", "healthCheckSecret"}
    assert "PRIVATE KEY" not in json.dumps(response) and secret["healthCheckSecret"] not in json.dumps(response)
    csr = x509.load_pem_x509_csr(response["Data"]["CertificateSigningRequest"].encode())
    key = serialization.load_pem_private_key(secret["privateKey"].encode(), password=None)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == thing
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    # Nothing was created in IoT: the certificate is CloudFormation's.
    assert cloud.client("iot", PRIMARY).list_certificates()["certificates"] == []


def test_the_certificate_made_from_the_csr_is_added_to_the_secret(
    cloud: LocalCloud, cloudformation: CloudFormationEndpoint, secret_arn: str
) -> None:
    iot = cloud.client("iot", PRIMARY)
    handle(cloud, key_request("Create", cloudformation.url, thing_name(), secret_arn))
    csr = cloudformation.responses[0]["Data"]["CertificateSigningRequest"]
    certificate = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    before = stored(cloud, secret_arn)

    handle(cloud, certificate_request(cloudformation.url, certificate["certificateId"], secret_arn))

    answer = cloudformation.responses[1]
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", certificate["certificateId"])
    assert stored(cloud, secret_arn) == {**before, "certificatePem": certificate["certificatePem"]}
    assert "certificatePem" not in json.dumps(answer)


def test_a_certificate_for_another_key_is_refused_and_the_secret_is_left_alone(
    cloud: LocalCloud, cloudformation: CloudFormationEndpoint, secret_arn: str
) -> None:
    iot = cloud.client("iot", PRIMARY)
    handle(cloud, key_request("Create", cloudformation.url, thing_name(), secret_arn))
    _, other_csr = checker_credentials.new_key_and_csr("someone-else")
    other = iot.create_certificate_from_csr(certificateSigningRequest=other_csr, setAsActive=False)
    before = stored(cloud, secret_arn)

    handle(cloud, certificate_request(cloudformation.url, other["certificateId"], secret_arn))

    failed = cloudformation.responses[1]
    assert failed["Status"] == "FAILED"
    assert f"CredentialsMismatch: certificate {other['certificateId']} does not certify the key" in failed["Reason"]
    assert stored(cloud, secret_arn) == before


@pytest.mark.parametrize(
    ("resource_type", "properties", "reason"),
    [
        (checker_credentials.KEY_RESOURCE, {"CredentialsSecretArn": "arn"}, "property ThingName is missing"),
        (
            checker_credentials.CERTIFICATE_RESOURCE,
            {"CertificateId": "0" * 64},
            "property CredentialsSecretArn is missing",
        ),
        ("Custom::Other", {"CredentialsSecretArn": "arn"}, "unknown resource type Custom::Other"),
    ],
    ids=["no-thing", "no-secret", "unknown-type"],
)
def test_bad_requests_are_answered_failed_once_with_the_reason(
    cloud: LocalCloud,
    cloudformation: CloudFormationEndpoint,
    resource_type: str,
    properties: dict[str, str],
    reason: str,
) -> None:
    handle(cloud, event(resource_type, "Create", cloudformation.url, **properties))

    [failed] = cloudformation.responses
    assert failed["Status"] == "FAILED" and reason in failed["Reason"]


def test_update_makes_a_new_key_under_a_new_physical_id_and_delete_removes_nothing(
    cloud: LocalCloud, cloudformation: CloudFormationEndpoint, secret_arn: str
) -> None:
    thing = thing_name()
    handle(cloud, key_request("Create", cloudformation.url, thing, secret_arn))
    first = cloudformation.responses[0]
    update = key_request("Update", cloudformation.url, thing, secret_arn)
    update.update(PhysicalResourceId=first["PhysicalResourceId"], OldResourceProperties={"ThingName": "old"})
    handle(cloud, update)
    second = cloudformation.responses[1]
    secret = stored(cloud, secret_arn)

    delete = key_request("Delete", cloudformation.url, thing, secret_arn)
    delete["PhysicalResourceId"] = first["PhysicalResourceId"]
    handle(cloud, delete)

    assert [r["Status"] for r in cloudformation.responses] == ["SUCCESS"] * 3
    # A new physical id makes CloudFormation replace the certificate made from the old CSR.
    assert second["PhysicalResourceId"] != first["PhysicalResourceId"]
    assert second["Data"]["CertificateSigningRequest"] != first["Data"]["CertificateSigningRequest"]
    assert stored(cloud, secret_arn) == secret, "deleting the old key's resource must not touch the new key"


def test_the_template_policy_is_the_one_the_local_checker_identity_uses() -> None:
    template, _ = decode(
        str(
            Path(__file__).resolve().parents[2] / "deployment/disaster-recovery-for-aws-iot-r53-health-checker.template"
        )
    )
    statements = template["Resources"]["CheckerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    thing = "iot-dr-r53-checker-0f3c2a9e"

    def resolve(arn: Any) -> str:
        text = arn["Fn::Sub"]
        for name, value in (
            ("AWS::Partition", "aws"),
            ("AWS::Region", PRIMARY),
            ("AWS::AccountId", "123456789012"),
            ("CheckerThing", thing),
        ):
            text = text.replace("${" + name + "}", value)
        return str(text)

    declared = [{"Effect": s["Effect"], "Action": s["Action"], "Resource": resolve(s["Resource"])} for s in statements]
    assert declared == checker_identity.policy_document("aws", PRIMARY, "123456789012", thing)["Statement"]
