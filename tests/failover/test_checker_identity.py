"""The health checker's identity custom resource against moto, answering CloudFormation through a real HTTP PUT."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto import mock_aws

from iot_dr import checker_identity, custom_resource

REGION = "us-east-1"
ACCOUNT = "123456789012"
THING = "iot-dr-r53-checker-0f3c2a9e-5b1d-4c7a-9e2f-1a2b3c4d5e6f"


@dataclass
class Context:
    remaining_ms: int = 120_000
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:checker-identity"
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
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationEndpoint]:
    endpoint = CloudFormationEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        iot = boto3.client("iot", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secret_arn = secrets.create_secret(Name="checker-credentials", SecretString="{}")["ARN"]
        yield iot, secrets, secret_arn


def event(request_type: str, url: str, secret_arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/checker/0f3c2a9e-5b1d-4c7a-9e2f-1a2b3c4d5e6f",
        "RequestId": f"request-{request_type}",
        "LogicalResourceId": "CheckerIdentity",
        "ResourceType": "Custom::HealthCheckerIdentity",
        "ResourceProperties": {"ServiceToken": "arn", "ThingName": THING, "CredentialsSecretArn": secret_arn},
        **extra,
    }


def test_create_answers_once_with_attributes_and_keeps_the_key_in_secrets_manager(
    aws: tuple[Any, Any, str], cloudformation: CloudFormationEndpoint
) -> None:
    iot, secrets, secret_arn = aws

    checker_identity.handle_event(event("Create", cloudformation.url, secret_arn), Context(), iot, secrets)

    [response] = cloudformation.responses
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == THING
    assert set(response["Data"]) == {"ThingName", "PolicyName", "CertificateId", "Endpoint"}
    stored = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    assert "PRIVATE KEY" not in json.dumps(response)
    assert stored["healthCheckSecret"] not in json.dumps(response)
    certificate = x509.load_pem_x509_certificate(stored["certificatePem"].encode())
    key = serialization.load_pem_private_key(stored["privateKey"].encode(), password=None)
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    certificate_id = response["Data"]["CertificateId"]
    assert iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName=THING)["principals"][0].endswith(certificate_id)
    attached = iot.list_attached_policies(target=iot.list_thing_principals(thingName=THING)["principals"][0])
    assert [p["policyName"] for p in attached["policies"]] == [f"{THING}-policy"]


def test_policy_allows_only_the_checker_client_ids_and_topics() -> None:
    document = checker_identity.policy_document("aws", REGION, ACCOUNT, THING)

    resources = {statement["Resource"] for statement in document["Statement"]}
    assert resources == {
        f"arn:aws:iot:{REGION}:{ACCOUNT}:client/{THING}-*",
        f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/iot-dr/health-check/{THING}/*",
        f"arn:aws:iot:{REGION}:{ACCOUNT}:topicfilter/iot-dr/health-check/{THING}/*",
    }


def test_delete_removes_thing_certificate_and_policy_and_can_repeat(
    aws: tuple[Any, Any, str], cloudformation: CloudFormationEndpoint
) -> None:
    iot, secrets, secret_arn = aws
    checker_identity.handle_event(event("Create", cloudformation.url, secret_arn), Context(), iot, secrets)
    certificate_id = cloudformation.responses[0]["Data"]["CertificateId"]

    for _ in range(2):
        checker_identity.handle_event(
            event("Delete", cloudformation.url, secret_arn, PhysicalResourceId=THING), Context(), iot, secrets
        )

    assert [r["Status"] for r in cloudformation.responses] == ["SUCCESS", "SUCCESS", "SUCCESS"]
    for call in (
        lambda: iot.describe_thing(thingName=THING),
        lambda: iot.describe_certificate(certificateId=certificate_id),
        lambda: iot.get_policy(policyName=f"{THING}-policy"),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_failed_create_answers_failed_once_and_the_rollback_delete_cleans_up(
    aws: tuple[Any, Any, str], cloudformation: CloudFormationEndpoint
) -> None:
    iot, secrets, _ = aws
    missing = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:missing-AbCdEf"

    checker_identity.handle_event(event("Create", cloudformation.url, missing), Context(), iot, secrets)

    [failed] = cloudformation.responses
    assert failed["Status"] == "FAILED"
    assert failed["PhysicalResourceId"] == THING
    assert "ResourceNotFoundException" in failed["Reason"]
    assert iot.list_thing_principals(thingName=THING)["principals"], "the failed create left a certificate"

    checker_identity.handle_event(
        event("Delete", cloudformation.url, missing, PhysicalResourceId=THING), Context(), iot, secrets
    )

    assert cloudformation.responses[1]["Status"] == "SUCCESS"
    assert iot.list_certificates()["certificates"] == []
    assert iot.list_things()["things"] == []
    assert iot.list_policies()["policies"] == []


def test_update_with_the_same_properties_keeps_the_identity(
    aws: tuple[Any, Any, str], cloudformation: CloudFormationEndpoint
) -> None:
    iot, secrets, secret_arn = aws
    checker_identity.handle_event(event("Create", cloudformation.url, secret_arn), Context(), iot, secrets)
    created = cloudformation.responses[0]
    before = secrets.get_secret_value(SecretId=secret_arn)["SecretString"]

    update = event(
        "Update",
        cloudformation.url,
        secret_arn,
        PhysicalResourceId=THING,
        OldResourceProperties={"ThingName": THING, "CredentialsSecretArn": secret_arn},
    )
    checker_identity.handle_event(update, Context(), iot, secrets)

    assert cloudformation.responses[1]["Status"] == "SUCCESS"
    assert cloudformation.responses[1]["PhysicalResourceId"] == THING
    # moto invents a new endpoint address on every DescribeEndpoint call; AWS returns the account's one.
    assert {k: v for k, v in cloudformation.responses[1]["Data"].items() if k != "Endpoint"} == {
        k: v for k, v in created["Data"].items() if k != "Endpoint"
    }
    assert secrets.get_secret_value(SecretId=secret_arn)["SecretString"] == before


def test_an_operation_that_outlives_the_lambda_is_answered_failed_once_before_the_timeout() -> None:
    sent: list[dict[str, Any]] = []

    def slow(_request: Any) -> custom_resource.Outcome:
        time.sleep(0.6)
        return custom_resource.Outcome("late")

    custom_resource.run(
        event("Create", "https://example.invalid/response", "arn"),
        Context(remaining_ms=5_300),
        create=slow,
        update=slow,
        delete=slow,
        physical_id_on_failure=lambda _request: "checker",
        send=lambda _url, body: sent.append(json.loads(body)),
    )

    assert [(r["Status"], r["PhysicalResourceId"]) for r in sent] == [("FAILED", "checker")]
    assert "Timed out" in sent[0]["Reason"]


def test_an_unknown_request_type_is_answered_failed() -> None:
    sent: list[dict[str, Any]] = []

    custom_resource.run(
        event("Replace", "https://example.invalid/response", "arn"),
        Context(),
        create=lambda _r: custom_resource.Outcome("x"),
        update=lambda _r: custom_resource.Outcome("x"),
        delete=lambda _r: custom_resource.Outcome("x"),
        physical_id_on_failure=lambda _request: "checker",
        send=lambda _url, body: sent.append(json.loads(body)),
    )

    assert [r["Status"] for r in sent] == ["FAILED"]
