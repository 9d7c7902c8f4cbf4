"""A local certificate authority for the brokers and devices of the local cloud.

AWS IoT presents a server certificate from a public CA and accepts device certificates it has registered. Locally,
one CA signs the brokers' server certificates (with the loopback addresses and names devices connect to) and the
device certificates, so mosquitto can require mutual TLS exactly as IoT Core does. The same device certificates can
be registered in moto with ``register_certificate_without_ca``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)
_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCertificate:
    """PEM files of one issued certificate and its private key."""

    name: str
    cert_path: Path
    key_path: Path

    @property
    def cert_pem(self) -> str:
        return self.cert_path.read_text()

    @property
    def key_pem(self) -> str:
        return self.key_path.read_text()


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys are generated in microseconds; RSA-2048 would dominate fleet set-up time.
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IoT DR local cloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def build_certificate(
    subject: x509.Name,
    public_key: Any,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
    validity: datetime.timedelta = _VALIDITY,
) -> x509.Certificate:
    """A certificate for ``public_key`` signed with SHA-256 by ``issuer_key``, valid from a few minutes ago (clock
    skew) for ``validity``, with ``extensions`` (extension, critical) and its key identifiers; self-signed (no
    authority key identifier) when ``issuer_key`` is the subject's own key."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_key.public_key() != public_key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


class LocalCA:
    """A self-signed CA kept in ``directory`` (``ca.pem``, ``ca.key``) that issues server and device certificates."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_path = directory / "ca.pem"
        self.key_path = directory / "ca.key"
        if self.cert_path.exists() and self.key_path.exists():
            self._cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self.key_path} is not an EC private key")
            self._key = loaded
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self._key = _new_key()
            name = _name("IoT DR local CA")
            self._cert = build_certificate(
                subject=name,
                public_key=self._key.public_key(),
                issuer=name,
                issuer_key=self._key,
                extensions=[
                    (x509.BasicConstraints(ca=True, path_length=0), True),
                    (
                        x509.KeyUsage(
                            digital_signature=True,
                            content_commitment=False,
                            key_encipherment=False,
                            data_encipherment=False,
                            key_agreement=False,
                            key_cert_sign=True,
                            crl_sign=True,
                            encipher_only=False,
                            decipher_only=False,
                        ),
                        True,
                    ),
                ],
            )
            _write_key(self.key_path, self._key)
            _write_cert(self.cert_path, self._cert)

    @property
    def cert_pem(self) -> str:
        return self.cert_path.read_text()

    def _issue(self, name: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> IssuedCertificate:
        key = _new_key()
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([usage]), False),
        ]
        if sans:
            extensions.append((x509.SubjectAlternativeName(sans), False))
        cert = build_certificate(_name(name), key.public_key(), self._cert.subject, self._key, extensions)
        issued = IssuedCertificate(name, self.directory / f"{name}.pem", self.directory / f"{name}.key")
        _write_key(issued.key_path, key)
        _write_cert(issued.cert_path, cert)
        return issued

    def issue_server(self, name: str, dns_names: list[str], addresses: list[str]) -> IssuedCertificate:
        """A broker certificate valid for every name and address a device may use to reach it."""
        sans: list[x509.GeneralName] = [x509.DNSName(n.rstrip(".")) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        return self._issue(name, ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def sign_client_key(self, subject: x509.Name, public_key: Any) -> x509.Certificate:
        """A device certificate for a key the caller holds (a CSR's, or one IoT generated), as AWS IoT issues them."""
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ]
        return build_certificate(subject, public_key, self._cert.subject, self._key, extensions)

    def issue_device(self, name: str) -> IssuedCertificate:
        """A device certificate whose common name is the thing name (mosquitto uses it as the user name)."""
        return self._issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, [])
