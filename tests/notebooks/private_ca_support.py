"""A local root CA and an ACTIVE subordinate Private CA signed by it, made with the API calls notebook 02 makes."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SUBJECT = {"Organization": "IoT DR tests", "CommonName": "Test Device CA"}


@dataclass(frozen=True)
class Root:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_root(common_name: str = "Test Root") -> Root:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Root(certificate, key)


def sign(root: Root, csr_pem: str, ca: bool = True) -> bytes:
    """A certificate for the CSR's subject and key, signed by ``root``."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(root.certificate.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=20))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .sign(root.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def create_pca(acm_pca: Any, subject: dict[str, str] | None = None, token: str | None = None) -> str:
    """A subordinate Private CA still waiting for its certificate (PENDING_CERTIFICATE)."""
    request: dict[str, Any] = {
        "CertificateAuthorityConfiguration": {
            "KeyAlgorithm": "RSA_2048",
            "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": subject or SUBJECT,
        },
        "CertificateAuthorityType": "SUBORDINATE",
    }
    if token:
        request["IdempotencyToken"] = token
    return str(acm_pca.create_certificate_authority(**request)["CertificateAuthorityArn"])


def activate(acm_pca: Any, arn: str, root: Root) -> bytes:
    """Sign the Private CA's CSR with ``root`` and import the certificate; returns it (PEM)."""
    csr = acm_pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
    certificate = sign(root, csr)
    acm_pca.import_certificate_authority_certificate(
        CertificateAuthorityArn=arn, Certificate=certificate, CertificateChain=root.pem
    )
    return certificate


def csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return key, request.public_bytes(serialization.Encoding.PEM)
