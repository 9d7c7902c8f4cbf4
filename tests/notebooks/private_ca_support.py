"""A local root CA and an ACTIVE subordinate Private CA signed by it, made as notebook 02 makes them (with
``iot_dr_pca``, the notebooks' functions), for tests that need a Private CA without running the notebooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import iot_dr_pca
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
    name = iot_dr_pca.x509_name({"CommonName": common_name})
    return Root(iot_dr_pca.ca_certificate(name, key.public_key(), name, key, days=30, path_length=None), key)


def sign(root: Root, csr_pem: str) -> bytes:
    """A subordinate CA certificate (PEM) for the CSR's subject and key, signed by ``root``."""
    return iot_dr_pca.sign_subordinate(csr_pem, (root.certificate, root.key)).encode()


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
    return key, iot_dr_pca.csr_pem(key, common_name)
