"""AWS Private CA calls the notebooks and ``create-device-pca.sh`` make, as AWS answers them.

moto 5.2.5 implements CreateCertificateAuthority, GetCertificateAuthorityCsr, ImportCertificateAuthorityCertificate,
IssueCertificate, GetCertificate, GetCertificateAuthorityCertificate, ListCertificateAuthorities and
DescribeCertificateAuthority, and signs issued certificates with the CA's own key (a chain check passes). Where it
differs from AWS in ways the notebooks would hide, this extension restores AWS's behaviour:

- ``IdempotencyToken``: a repeated CreateCertificateAuthority or IssueCertificate with the same token (and, for
  IssueCertificate, the same CA) within five minutes returns the first call's ARN (moto: ignored, a new CA or
  certificate each time). Documented in the API reference of both calls:
  https://docs.aws.amazon.com/privateca/latest/APIReference/API_CreateCertificateAuthority.html and
  https://docs.aws.amazon.com/privateca/latest/APIReference/API_IssueCertificate.html.
- IssueCertificate honours ``Validity`` and ``SigningAlgorithm`` (moto: 365 days, SHA-512) and refuses a CA that is
  not ACTIVE with ``InvalidStateException`` (moto: issues from a CA without a certificate).
- ImportCertificateAuthorityCertificate refuses a certificate whose public key is not the CA's with
  ``CertificateMismatchException`` (moto: accepts any certificate).

The CA's key stays in moto (RSA 2048 whatever ``KeyAlgorithm`` asks for; the notebooks ask for RSA_2048).
"""

from __future__ import annotations

import base64
import datetime
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from moto.acmpca.exceptions import InvalidStateException
from moto.acmpca.models import CertificateAuthority
from moto.acmpca.responses import ACMPCAResponse
from moto.core.exceptions import JsonRESTError
from moto.moto_api._internal import mock_random
from moto.utilities.utils import get_partition

from iot_dr_local.patching import Patches

IDEMPOTENCY_WINDOW_SECONDS = 300.0
_HASHES = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}

_patches = Patches()
# (account, region, operation, scope, token) -> (ARN, monotonic time of the first call)
_tokens: dict[tuple[str, str, str, str, str], tuple[str, float]] = {}


class CertificateMismatchException(JsonRESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__(
            "CertificateMismatchException",
            "The certificate authority certificate you are importing does not comply with conditions specified in "
            "the certificate that signed it.",
        )


class InvalidArgsException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidArgsException", message)


def _remembered(key: tuple[str, str, str, str, str]) -> str | None:
    found = _tokens.get(key)
    if found is None or time.monotonic() - found[1] > IDEMPOTENCY_WINDOW_SECONDS:
        return None
    return found[0]


def validity_end(validity: dict[str, object], start: datetime.datetime) -> datetime.datetime:
    """The certificate's ``notAfter`` for a PCA ``Validity`` (``Type`` DAYS, MONTHS, YEARS, END_DATE or ABSOLUTE).

    Raises ``InvalidArgsException`` for another type or a value that is not a positive integer.
    """
    kind, value = validity.get("Type"), validity.get("Value")
    if not isinstance(value, int) or value <= 0:
        raise InvalidArgsException("Validity.Value must be a positive integer")
    if kind == "DAYS":
        return start + datetime.timedelta(days=value)
    if kind == "MONTHS":
        return start + datetime.timedelta(days=30 * value)
    if kind == "YEARS":
        return start + datetime.timedelta(days=365 * value)
    if kind == "ABSOLUTE":
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    if kind == "END_DATE":
        return datetime.datetime.strptime(str(value), "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)
    raise InvalidArgsException(f"Validity.Type {kind} is not supported")


def _signing_hash(algorithm: str) -> hashes.HashAlgorithm:
    for prefix, hash_type in _HASHES.items():
        if algorithm.startswith(prefix):
            return hash_type()
    raise InvalidArgsException(f"SigningAlgorithm {algorithm} is not supported")


def _create_certificate_authority(self: ACMPCAResponse) -> str:
    token = json.loads(self.body).get("IdempotencyToken")
    if not token:
        return str(_patches.original(ACMPCAResponse, "create_certificate_authority")(self))
    key = (self.current_account, self.region, "create", "", token)
    arn = _remembered(key)
    if arn is None:
        arn = json.loads(_patches.original(ACMPCAResponse, "create_certificate_authority")(self))[
            "CertificateAuthorityArn"
        ]
        _tokens[key] = (arn, time.monotonic())
    return json.dumps({"CertificateAuthorityArn": arn})


def _issue(ca: CertificateAuthority, params: dict[str, object]) -> str:
    if ca.status != "ACTIVE":
        raise InvalidStateException(ca.arn)
    csr = x509.load_pem_x509_csr(base64.b64decode(str(params["Csr"])))
    template_arn = params.get("TemplateArn")
    now = datetime.datetime.now(datetime.UTC)
    validity = params.get("Validity")
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.certificate.subject if ca.certificate is not None else ca.issuer)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(validity_end(validity if isinstance(validity, dict) else {}, now))
    )
    for extension, critical in ca._x509_extensions(csr, template_arn if isinstance(template_arn, str) else None):
        builder = builder.add_extension(extension, critical)
    certificate = builder.sign(ca.key, _signing_hash(str(params.get("SigningAlgorithm", "SHA256WITHRSA"))))
    certificate_id = str(mock_random.uuid4()).replace("-", "")
    arn = (
        f"arn:{get_partition(ca.region_name)}:acm-pca:{ca.region_name}:{ca.account_id}:certificate-authority/"
        f"{ca.id}/certificate/{certificate_id}"
    )
    ca.issued_certificates[arn] = certificate.public_bytes(serialization.Encoding.PEM)
    if template_arn != "arn:aws:acm-pca:::template/RootCACertificate/V1":
        ca.issued_certificates_certificate_chains[arn] = ca.certificate_bytes
    return arn


def _issue_certificate(self: ACMPCAResponse) -> str:
    params = json.loads(self.body)
    ca = self.acmpca_backend.describe_certificate_authority(params.get("CertificateAuthorityArn"))
    token = params.get("IdempotencyToken")
    key = (self.current_account, self.region, "issue", ca.arn, token or "")
    arn = _remembered(key) if token else None
    if arn is None:
        arn = _issue(ca, params)
        if token:
            _tokens[key] = (arn, time.monotonic())
    return json.dumps({"CertificateArn": arn})


def _import_certificate_authority_certificate(self: ACMPCAResponse) -> str:
    params = json.loads(self.body)
    ca = self.acmpca_backend.describe_certificate_authority(params.get("CertificateAuthorityArn"))
    try:
        imported = x509.load_pem_x509_certificate(base64.b64decode(params.get("Certificate", "")))
    except ValueError:
        imported = None
    if imported is not None and imported.public_key() != ca.key.public_key():
        raise CertificateMismatchException()
    return str(_patches.original(ACMPCAResponse, "import_certificate_authority_certificate")(self))


_RESPONSES = {
    "create_certificate_authority": _create_certificate_authority,
    "issue_certificate": _issue_certificate,
    "import_certificate_authority_certificate": _import_certificate_authority_certificate,
}


def install() -> None:
    if not _patches.applied:
        for name, method in _RESPONSES.items():
            _patches.set(ACMPCAResponse, name, method)


def uninstall() -> None:
    _patches.restore()
    _tokens.clear()


def reset() -> None:
    _tokens.clear()
