"""Certificates AWS IoT issues (CreateKeysAndCertificate, CreateCertificateFromCsr), signed by a CA the local
brokers trust.

In AWS, IoT signs these certificates with a CA its data endpoints trust, so a device created with
``create-device.sh`` or bulk registration connects at once. moto signs them with a throwaway key the local brokers
cannot trust, and CreateCertificateFromCsr puts a *new* key in the certificate instead of the CSR's, so a device
holding the CSR's private key could never use it. With this extension both use the CSR's (or the generated) key and,
once ``use_ca`` names the failover services' CA, that CA signs them.
https://docs.aws.amazon.com/iot/latest/apireference/API_CreateCertificateFromCsr.html
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.iot.models import FakeCertificate, IoTBackend

from iot_dr_local.patching import Patches
from iot_dr_local.pki import LocalCA, build_certificate

_patches = Patches()
_lock = threading.Lock()
_ca: LocalCA | None = None
_fallback: ec.EllipticCurvePrivateKey | None = None
# AWS IoT puts this subject on the certificates it creates.
SUBJECT = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "AWS IoT Certificate")])


def use_ca(ca: LocalCA | None) -> None:
    """Sign from now on with ``ca`` (None: moto's throwaway issuer)."""
    global _ca
    with _lock:
        _ca = ca


def _fallback_issuer() -> tuple[x509.Name, ec.EllipticCurvePrivateKey]:
    global _fallback
    with _lock:
        if _fallback is None:
            _fallback = ec.generate_private_key(ec.SECP256R1())
        return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "iot-dr-local issuer")]), _fallback


def _certificate_pem(subject: x509.Name, public_key: Any) -> str:
    """A client certificate for ``public_key``: from the CA given to ``use_ca``, else from a throwaway issuer."""
    with _lock:
        ca = _ca
    if ca is not None:
        certificate = ca.sign_client_key(subject, public_key)
    else:
        issuer, key = _fallback_issuer()
        certificate = build_certificate(subject, public_key, issuer, key, [], validity=datetime.timedelta(days=365))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _create_keys_and_certificate(self: IoTBackend, set_as_active: bool) -> tuple[FakeCertificate, dict[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pair = {
        "PublicKey": key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "PrivateKey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode(),
    }
    pem = _certificate_pem(SUBJECT, key.public_key())
    certificate = FakeCertificate(pem, "ACTIVE" if set_as_active else "INACTIVE", self.account_id, self.region_name)
    self.certificates[certificate.certificate_id] = certificate
    return certificate, key_pair


def _create_certificate_from_csr(self: IoTBackend, csr: str, set_as_active: bool) -> FakeCertificate:
    request = x509.load_pem_x509_csr(csr.encode())
    pem = _certificate_pem(request.subject, request.public_key())
    return self.register_certificate(pem, ca_certificate_pem=None, set_as_active=set_as_active, status="INACTIVE")


def install() -> None:
    if not _patches.applied:
        _patches.set(IoTBackend, "create_keys_and_certificate", _create_keys_and_certificate)
        _patches.set(IoTBackend, "create_certificate_from_csr", _create_certificate_from_csr)


def uninstall() -> None:
    use_ca(None)
    _patches.restore()
