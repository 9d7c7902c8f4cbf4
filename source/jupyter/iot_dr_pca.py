"""What the private-CA notebooks do, as functions: one shared configuration, each step idempotent.

01 writes the configuration (``iot-dr-pca.json`` in the working directory); 02 creates a local root CA and an AWS
Private CA subordinate CA signed by it; 03 registers the subordinate CA's certificate in the primary and secondary
regions with a verification certificate per region and auto-registration on; 04 issues device certificates from the
Private CA; 05 connects a device with MQTT 5 (awsiotsdk) for just-in-time registration (JITR).

Every function looks up what an earlier run created before creating anything, so each notebook can run again.
Private keys are written with mode 0600 and never printed. Clients come from boto3 and honour ``AWS_ENDPOINT_URL``
(the local cloud) and the standard retry settings.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

CONFIG_FILE = "iot-dr-pca.json"
ROOT_VALIDITY_DAYS = 20 * 365
SUBORDINATE_VALIDITY_DAYS = 10 * 365
CERTIFICATE_VALIDITY_DAYS = 365
# Both the CA creation and the certificate issue forget an idempotency token after five minutes.
_TOKEN_LENGTH = 36
_NAME_FIELDS = {
    "Country": NameOID.COUNTRY_NAME,
    "State": NameOID.STATE_OR_PROVINCE_NAME,
    "Locality": NameOID.LOCALITY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CommonName": NameOID.COMMON_NAME,
}


class PcaNotFound(Exception):
    """No usable Private CA with the configured common name exists in the PCA region; run notebook 02."""


class DeviceNotConnected(Exception):
    """The device was not admitted within the time allowed; ``refusals`` holds what the endpoint answered."""

    def __init__(self, message: str, refusals: list[str]) -> None:
        super().__init__(message)
        self.refusals = refusals


@dataclass
class Config:
    """The notebooks' shared settings (regions, names, working directory), stored as JSON by notebook 01."""

    pca_region: str
    primary_region: str
    secondary_region: str
    work_dir: str
    root_subject: dict[str, str] = field(default_factory=dict)
    subordinate_subject: dict[str, str] = field(default_factory=dict)

    @property
    def root_dir(self) -> Path:
        return Path(self.work_dir) / "root-ca"

    @property
    def pca_dir(self) -> Path:
        return Path(self.work_dir) / "pca"

    @property
    def device_dir(self) -> Path:
        return Path(self.work_dir) / "devices"

    @property
    def regions(self) -> tuple[str, str]:
        return (self.primary_region, self.secondary_region)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path = Path(CONFIG_FILE)) -> Config:
        """Raises FileNotFoundError with the notebook to run when notebook 01 has not written it."""
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run 01_IoTDR_Shared.ipynb first")
        return cls(**json.loads(path.read_text()))


@dataclass(frozen=True)
class DeviceFiles:
    """A device's key, certificate, and certificate followed by the Private CA's (for the JITR first connection)."""

    thing_name: str
    key_path: Path
    cert_path: Path
    bundle_path: Path
    certificate_id: str


# ---------------------------------------------------------------------------------------------- helpers


def token(*parts: str) -> str:
    """An idempotency token for one request: the same inputs give the same token, different ones another."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:_TOKEN_LENGTH]


def x509_name(subject: dict[str, str]) -> x509.Name:
    """An X.509 name from a PCA-style subject (``Country``, ``Organization``, ..., ``CommonName``)."""
    return x509.Name([x509.NameAttribute(_NAME_FIELDS[k], v) for k, v in subject.items() if k in _NAME_FIELDS])


def certificate_id(pem: str) -> str:
    """AWS IoT's ID of a certificate: the SHA-256 of its DER encoding."""
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    encoding, key_format = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, key_format, serialization.NoEncryption())


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA-2048 key in ``path``, created (mode 0600) if absent."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(path, _key_pem(key))
    return key


def csr_pem(key: CertificateIssuerPrivateKeyTypes, common_name: str) -> bytes:
    """A CSR (PEM) for ``key`` whose subject is only ``common_name``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def ca_certificate(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    """A CA certificate (key usage: certificate and CRL signing) for ``public_key``, signed with SHA-256 by
    ``issuer_key``, valid from five minutes ago (clock skew) for ``days``. Self-signed when ``issuer_key`` is the
    subject's own key; otherwise it names the issuer's key (authority key identifier)."""
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_key.public_key() != public_key:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


# ------------------------------------------------------------------------------------- 02: root and PCA


def ensure_root_ca(config: Config) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The local self-signed root CA in ``root_dir`` (``ca.key.pem`` mode 0600, ``ca.crt.pem``), created if absent."""
    key = load_or_create_key(config.root_dir / "ca.key.pem")
    cert_path = config.root_dir / "ca.crt.pem"
    if cert_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.public_key() == key.public_key():
            return cert, key
    name = x509_name(config.root_subject)
    cert = ca_certificate(name, key.public_key(), name, key, ROOT_VALIDITY_DAYS, path_length=None)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return cert, key


def find_pca(acm_pca: Any, common_name: str) -> dict[str, Any] | None:
    """The newest subordinate Private CA whose subject CN is ``common_name`` and that is not deleted or failed."""
    for page in acm_pca.get_paginator("list_certificate_authorities").paginate():
        for ca in page["CertificateAuthorities"]:
            subject = ca.get("CertificateAuthorityConfiguration", {}).get("Subject", {})
            if (
                ca.get("Type") == "SUBORDINATE"
                and subject.get("CommonName") == common_name
                and ca.get("Status") not in ("DELETED", "FAILED")
            ):
                return dict(ca)
    return None


def require_pca(acm_pca: Any, config: Config) -> str:
    """The ARN of the configured Private CA, ACTIVE. Raises ``PcaNotFound``."""
    common_name = config.subordinate_subject["CommonName"]
    ca = find_pca(acm_pca, common_name)
    if ca is None or ca["Status"] != "ACTIVE":
        state = "does not exist" if ca is None else f"is {ca['Status']}"
        raise PcaNotFound(
            f"the Private CA with common name {common_name!r} {state} in {config.pca_region}: "
            "run 02_IoTDR_ACM_PCA.ipynb"
        )
    return str(ca["Arn"])


def ensure_pca(acm_pca: Any, config: Config, root: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> str:
    """Create the subordinate Private CA if needed and install its certificate signed by the local root.

    Returns the CA's ARN once it is ACTIVE. The subordinate's CSR, certificate and chain are kept in ``pca_dir``.
    """
    common_name = config.subordinate_subject["CommonName"]
    ca = find_pca(acm_pca, common_name)
    if ca is None:
        arn = acm_pca.create_certificate_authority(
            CertificateAuthorityConfiguration={
                "KeyAlgorithm": "RSA_2048",
                "SigningAlgorithm": "SHA256WITHRSA",
                "Subject": config.subordinate_subject,
            },
            RevocationConfiguration={"CrlConfiguration": {"Enabled": False}},
            CertificateAuthorityType="SUBORDINATE",
            IdempotencyToken=token("create-ca", config.pca_region, common_name),
            Tags=[{"Key": "Solution", "Value": "IoTDR"}],
        )["CertificateAuthorityArn"]
        acm_pca.get_waiter("certificate_authority_csr_created").wait(CertificateAuthorityArn=arn)
        ca = acm_pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"]
    arn = str(ca["Arn"])
    if ca["Status"] == "PENDING_CERTIFICATE":
        csr = acm_pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
        _write_public(config.pca_dir / "subca_csr.pem", csr)
        certificate = sign_subordinate(csr, root)
        _write_public(config.pca_dir / "subca_crt.pem", certificate)
        root_pem = root[0].public_bytes(serialization.Encoding.PEM)
        acm_pca.import_certificate_authority_certificate(
            CertificateAuthorityArn=arn, Certificate=certificate.encode(), CertificateChain=root_pem
        )
    elif ca["Status"] != "ACTIVE":
        raise PcaNotFound(f"the Private CA {arn} is {ca['Status']}; restore or delete it and run this notebook again")
    return arn


def sign_subordinate(csr: str, root: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]) -> str:
    """The Private CA's certificate (PEM): its CSR's subject and key, signed by the root, CA with path length 0."""
    request = x509.load_pem_x509_csr(csr.encode())
    root_cert, root_key = root
    cert = ca_certificate(
        request.subject, request.public_key(), root_cert.subject, root_key, SUBORDINATE_VALIDITY_DAYS, path_length=0
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# ----------------------------------------------------------------------------------- issuing from the PCA


def issue(acm_pca: Any, pca_arn: str, csr: bytes, idempotency_token: str) -> str:
    """A certificate (PEM) for ``csr`` from the Private CA, valid 365 days, once the PCA has issued it."""
    arn = acm_pca.issue_certificate(
        CertificateAuthorityArn=pca_arn,
        Csr=csr,
        SigningAlgorithm="SHA256WITHRSA",
        Validity={"Value": CERTIFICATE_VALIDITY_DAYS, "Type": "DAYS"},
        IdempotencyToken=idempotency_token,
    )["CertificateArn"]
    acm_pca.get_waiter("certificate_issued").wait(CertificateAuthorityArn=pca_arn, CertificateArn=arn)
    return str(acm_pca.get_certificate(CertificateAuthorityArn=pca_arn, CertificateArn=arn)["Certificate"])


def pca_certificate(acm_pca: Any, pca_arn: str) -> str:
    return str(acm_pca.get_certificate_authority_certificate(CertificateAuthorityArn=pca_arn)["Certificate"])


# ------------------------------------------------------------------------ 03: CA registration per region


def ensure_ca_registered(iot: Any, acm_pca: Any, pca_arn: str, region: str, config: Config) -> tuple[str, bool]:
    """Register the Private CA's certificate in ``region`` (ACTIVE, auto-registration on) unless it already is.

    The verification certificate's CN is the region's registration code and its idempotency token is derived from
    the region and that code, so the two regions never get the same certificate. Returns the CA certificate ID and
    whether this call registered it (False: it was registered before and has been made ACTIVE with auto-registration).
    """
    ca_pem = pca_certificate(acm_pca, pca_arn)
    ca_id = certificate_id(ca_pem)
    if _registered_ca(iot, ca_id):
        _enable(iot, ca_id)
        return ca_id, False
    code = iot.get_registration_code()["registrationCode"]
    key = load_or_create_key(config.pca_dir / f"registration_key_{region}.pem")
    verification = issue(acm_pca, pca_arn, csr_pem(key, code), token("verification", region, code))
    _write_public(config.pca_dir / f"registration_cert_{region}.pem", verification)
    try:
        iot.register_ca_certificate(
            caCertificate=ca_pem,
            verificationCertificate=verification,
            setAsActive=True,
            allowAutoRegistration=True,
        )
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
        _enable(iot, ca_id)
        return ca_id, False
    return ca_id, True


def _registered_ca(iot: Any, ca_id: str) -> bool:
    try:
        iot.describe_ca_certificate(certificateId=ca_id)
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise
    return True


def _enable(iot: Any, ca_id: str) -> None:
    description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    if description["status"] != "ACTIVE" or description.get("autoRegistrationStatus") != "ENABLE":
        iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE", newAutoRegistrationStatus="ENABLE")


def describe_ca(iot: Any, ca_id: str) -> dict[str, str]:
    """What notebook 03 shows of a registered CA: no PEM, nothing secret."""
    description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    return {key: str(description.get(key)) for key in ("certificateId", "status", "autoRegistrationStatus")}


# ------------------------------------------------------------------------------ 04: device certificates


def ensure_device_certificate(acm_pca: Any, pca_arn: str, thing_name: str, config: Config) -> DeviceFiles:
    """The device's key and Private-CA certificate in ``device_dir``, issued unless a valid one is there already."""
    directory = config.device_dir
    key = load_or_create_key(directory / f"{thing_name}.device.key.pem")
    cert_path = directory / f"{thing_name}.device.cert.pem"
    bundle_path = directory / f"{thing_name}.device.root.cert.pem"
    ca_pem = pca_certificate(acm_pca, pca_arn)
    if not _usable(cert_path, key, ca_pem):
        certificate = issue(acm_pca, pca_arn, csr_pem(key, thing_name), token("device", pca_arn, thing_name))
        _write_public(cert_path, certificate.strip() + "\n")
    certificate = cert_path.read_text()
    _write_public(bundle_path, certificate.strip() + "\n" + ca_pem.strip() + "\n")
    return DeviceFiles(
        thing_name, directory / f"{thing_name}.device.key.pem", cert_path, bundle_path, certificate_id(certificate)
    )


def _usable(cert_path: Path, key: rsa.RSAPrivateKey, ca_pem: str) -> bool:
    """Whether ``cert_path`` holds a certificate for ``key``, issued by the PCA, valid for at least a day."""
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return cert.public_key() == key.public_key() and remaining > datetime.timedelta(days=1)


def device_files(config: Config, thing_name: str) -> DeviceFiles:
    """The files notebook 04 wrote for ``thing_name``. Raises FileNotFoundError naming the notebook to run."""
    directory = config.device_dir
    files = DeviceFiles(
        thing_name,
        directory / f"{thing_name}.device.key.pem",
        directory / f"{thing_name}.device.cert.pem",
        directory / f"{thing_name}.device.root.cert.pem",
        "",
    )
    missing = [str(p) for p in (files.key_path, files.cert_path, files.bundle_path) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: run 04_IoTDR_Device_Certs.ipynb for {thing_name}")
    return DeviceFiles(
        thing_name, files.key_path, files.cert_path, files.bundle_path, certificate_id(files.cert_path.read_text())
    )


def wait_for_thing(iot: Any, thing_name: str, timeout: float = 60.0) -> dict[str, Any] | None:
    """``DescribeThing`` once the thing exists (JITR or replication creates it), None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = iot.describe_thing(thingName=thing_name)
            return {key: found.get(key) for key in ("thingName", "thingArn", "version")}
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


# ------------------------------------------------------------------------------------ 05: JITR device


def connect_device(
    endpoint: str,
    port: int,
    root_ca: str | None,
    device: DeviceFiles,
    timeout: float = 60.0,
    on_refused: Callable[[str], None] = print,
) -> tuple[Any, list[str]]:
    """Connect ``device`` with MQTT 5 (client ID = thing name), presenting its certificate and the CA's.

    The first connection of a certificate registered just in time is refused; the client retries (0.5 to 2 s apart)
    until the JITR function has activated the certificate. Returns the started client and the refusals seen
    (reported through ``on_refused``). Raises ``DeviceNotConnected`` after ``timeout`` seconds.
    """
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder

    connected = threading.Event()
    refusals: list[str] = []

    def on_failure(data: mqtt5.LifecycleConnectFailureData) -> None:
        reason = data.connack_packet.reason_string if data.connack_packet else None
        refusals.append(reason or str(data.exception))
        on_refused(refusals[-1])

    options: dict[str, Any] = {
        "endpoint": endpoint,
        "port": port,
        "cert_filepath": str(device.bundle_path),
        "pri_key_filepath": str(device.key_path),
        "client_id": device.thing_name,
        "min_reconnect_delay_ms": 500,
        "max_reconnect_delay_ms": 2000,
        "on_lifecycle_connection_success": lambda _: connected.set(),
        "on_lifecycle_connection_failure": on_failure,
    }
    if root_ca:
        options["ca_filepath"] = root_ca
    client = mqtt5_client_builder.mtls_from_path(**options)
    client.start()
    if not connected.wait(timeout):
        client.stop()
        message = f"{device.thing_name} was not admitted to {endpoint}:{port} in {timeout:g} s"
        raise DeviceNotConnected(message, refusals)
    return client, refusals


def publish(client: Any, topic: str, message: dict[str, Any], timeout: float = 10.0) -> int:
    """Publish ``message`` as JSON with QoS 1; returns the PUBACK reason code.

    MQTT 5 reason codes below 0x80 are successes (0 from AWS IoT; a broker may answer 0x10, no matching
    subscribers). Raises ``RuntimeError`` for a failure code.
    """
    from awscrt import mqtt5

    packet = mqtt5.PublishPacket(topic=topic, payload=json.dumps(message).encode(), qos=mqtt5.QoS.AT_LEAST_ONCE)
    result = client.publish(packet).result(timeout)
    code = int(result.puback.reason_code)
    if code >= 0x80:
        raise RuntimeError(
            f"publish to {topic} refused: PUBACK reason code {code:#x} {result.puback.reason_string or ''}"
        )
    return code


def disconnect(client: Any) -> None:
    client.stop()
