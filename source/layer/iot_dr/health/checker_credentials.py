"""The health checker's credentials: a private key that never leaves Secrets Manager, for a certificate that
CloudFormation itself creates and deletes.

The health-checker stack declares the checker's thing, policy, certificate and attachments as native resources
(``AWS::IoT::Thing``, ``AWS::IoT::Policy``, ``AWS::IoT::Certificate`` from a CSR and the principal attachments), so
CloudFormation deletes exactly that certificate and no function needs rights over other certificates. Two custom
resources of one function fill in what CloudFormation cannot:

- ``Custom::HealthCheckerKey`` (``ThingName``, ``CredentialsSecretArn``) generates an EC P-256 key and a CSR for it,
  stores the key and a fresh API secret in Secrets Manager and returns only the CSR (public) and the data endpoint.
- ``Custom::HealthCheckerCertificate`` (``CertificateId``, ``CredentialsSecretArn``) adds the issued certificate's
  PEM to that secret, after checking that it certifies the stored key.

The secret then holds ``{"privateKey", "healthCheckSecret", "certificatePem"}``, the shape
``iot_dr.health.health_check`` reads. Neither resource deletes anything: the secret and the certificate are
CloudFormation's.
Certificates from a CSR:
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-iot-certificate.html
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iot_dr.core.errors import MalformedEvent
from iot_dr.deploy import custom_resource

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient
    from types_boto3_secretsmanager import SecretsManagerClient

LOG = logging.getLogger(__name__)

KEY_RESOURCE = "Custom::HealthCheckerKey"
CERTIFICATE_RESOURCE = "Custom::HealthCheckerCertificate"


class CredentialsMismatch(Exception):
    """The certificate does not certify the key in the secret (the secret was changed by someone else)."""


def new_key_and_csr(thing_name: str) -> tuple[str, str]:
    """(private key as PKCS#8 PEM, CSR as PEM with subject CN=``thing_name``), signed with SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_name)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def create_key(
    iot: IoTClient, secretsmanager: SecretsManagerClient, thing_name: str, secret_arn: str
) -> custom_resource.Outcome:
    """A new key and API secret in ``secret_arn``; the outcome carries the CSR and the endpoint, nothing secret.

    The physical id names the CSR, so a new key (an Update) replaces the certificate made from the old one."""
    key_pem, csr_pem = new_key_and_csr(thing_name)
    secretsmanager.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps({"privateKey": key_pem, "healthCheckSecret": secrets.token_urlsafe(32)}),
    )
    fingerprint = hashlib.sha256(csr_pem.encode()).hexdigest()[:16]
    LOG.info("checker key created", extra={"thing_name": thing_name, "csr_sha256": fingerprint})
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    return custom_resource.Outcome(
        f"{thing_name}:{fingerprint}", {"CertificateSigningRequest": csr_pem, "Endpoint": endpoint}
    )


def _public_key_der(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def store_certificate(
    iot: IoTClient, secretsmanager: SecretsManagerClient, certificate_id: str, secret_arn: str
) -> custom_resource.Outcome:
    """Add the certificate's PEM to the secret; raises ``CredentialsMismatch`` when it is not for the stored key."""
    pem = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["certificatePem"]
    value = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    if not isinstance(value, dict) or "privateKey" not in value:
        raise CredentialsMismatch(f"secret {secret_arn} holds no checker key")
    key = serialization.load_pem_private_key(value["privateKey"].encode(), password=None)
    certified = x509.load_pem_x509_certificate(pem.encode()).public_key()
    if _public_key_der(certified) != _public_key_der(key.public_key()):
        raise CredentialsMismatch(f"certificate {certificate_id} does not certify the key in {secret_arn}")
    secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=json.dumps({**value, "certificatePem": pem}))
    LOG.info("checker certificate stored", extra={"certificate_id": certificate_id})
    return custom_resource.Outcome(certificate_id)


def _property(request: Mapping[str, Any], name: str) -> str:
    value = (request.get("ResourceProperties") or {}).get(name)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"property {name} is missing")
    return value


def handle_event(
    event: Mapping[str, Any],
    context: Any,
    iot: IoTClient,
    secretsmanager: SecretsManagerClient,
    send: custom_resource.Sender = custom_resource.put_response,
) -> None:
    """Either resource type above; answers CloudFormation exactly once. Delete removes nothing (see module doc)."""
    custom_resource.require_request(event)
    resource_type = event.get("ResourceType")

    def create(request: Mapping[str, Any]) -> custom_resource.Outcome:
        secret_arn = _property(request, "CredentialsSecretArn")
        if resource_type == KEY_RESOURCE:
            return create_key(iot, secretsmanager, _property(request, "ThingName"), secret_arn)
        if resource_type == CERTIFICATE_RESOURCE:
            return store_certificate(iot, secretsmanager, _property(request, "CertificateId"), secret_arn)
        raise MalformedEvent(f"unknown resource type {resource_type}")

    def delete(request: Mapping[str, Any]) -> custom_resource.Outcome:
        return custom_resource.Outcome(str(request["PhysicalResourceId"]))

    custom_resource.run(
        event,
        context,
        create=create,
        # CloudFormation sends Update only when a property changed: a new thing or secret needs a new key, and a
        # new certificate (made from that key) its PEM in the secret.
        update=create,
        delete=delete,
        physical_id_on_failure=lambda request: f"{request.get('LogicalResourceId')}-failed",
        send=send,
    )
