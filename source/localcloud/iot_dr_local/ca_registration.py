"""AWS IoT's CA certificate registration as the notebooks and just-in-time registration use it.

moto 5.2.5 stores a CA certificate but leaves out what JITR depends on; this extension restores the AWS behaviour:

- ``GetRegistrationCode`` returns the same code for an account and region until ``DeleteRegistrationCode`` (moto: a
  new random code per call).
- ``RegisterCACertificate`` in the DEFAULT certificate mode requires a verification certificate signed by the CA's key
  whose subject common name is the registration code; it fails with ``ResourceAlreadyExistsException`` when the CA
  certificate is already registered in the region (moto: silently registers it again); it keeps
  ``allowAutoRegistration`` (moto: ignored).
- ``DescribeCACertificate`` reports ``autoRegistrationStatus`` and ``certificateMode``; ``UpdateCACertificate``
  honours ``newAutoRegistrationStatus``; ``ListCACertificates`` exists (moto: not implemented).

AWS documentation: https://docs.aws.amazon.com/iot/latest/developerguide/register-CA-cert.html,
https://docs.aws.amazon.com/iot/latest/apireference/API_RegisterCACertificate.html and
https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from moto.core.responses import ActionResult, EmptyResult
from moto.iot.exceptions import InvalidRequestException, ResourceAlreadyExistsException
from moto.iot.models import FakeCaCertificate, IoTBackend
from moto.iot.responses import IoTResponse

from iot_dr_local.patching import Patches

_patches = Patches()
# (account, region) -> registration code
_codes: dict[tuple[str, str], str] = {}


def registration_code(backend: IoTBackend) -> str:
    """The account's registration code in the backend's region, created on first use (64 hex digits, as in AWS)."""
    key = (backend.account_id, backend.region_name)
    if key not in _codes:
        _codes[key] = secrets.token_hex(32)
    return _codes[key]


def auto_registration_status(ca: FakeCaCertificate) -> str:
    """``ENABLE`` or ``DISABLE``: whether devices signed by ``ca`` may register just in time."""
    return str(getattr(ca, "auto_registration_status", "DISABLE"))


def issuing_ca(backend: IoTBackend, certificate: x509.Certificate) -> FakeCaCertificate | None:
    """The registered CA certificate whose key signed ``certificate``, if any."""
    for ca in list(backend.ca_certificates.values()):
        try:
            certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.certificate_pem.encode()))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def _check_verification_certificate(backend: IoTBackend, ca_pem: str, verification_pem: str | None) -> None:
    if not verification_pem:
        raise InvalidRequestException("verificationCertificate is required when certificateMode is DEFAULT")
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    try:
        verification = x509.load_pem_x509_certificate(verification_pem.encode())
        verification.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise InvalidRequestException("The verification certificate is not signed by the CA certificate") from err
    common_names = verification.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [name.value for name in common_names] != [registration_code(backend)]:
        raise InvalidRequestException(
            "The common name of the verification certificate is not this account's registration code"
        )


def _get_registration_code(self: IoTResponse) -> ActionResult:
    return ActionResult({"registrationCode": registration_code(self.iot_backend)})


def _delete_registration_code(self: IoTResponse) -> ActionResult:
    backend = self.iot_backend
    _codes.pop((backend.account_id, backend.region_name), None)
    return EmptyResult()


def _register_ca_certificate(self: IoTResponse) -> ActionResult:
    backend = self.iot_backend
    ca_pem = self._get_param("caCertificate")
    mode = self._get_param("certificateMode") or "DEFAULT"
    if mode == "DEFAULT":
        _check_verification_certificate(backend, ca_pem, self._get_param("verificationCertificate"))
    certificate_id = FakeCaCertificate(ca_pem, "INACTIVE", backend.account_id, backend.region_name, {}).certificate_id
    if certificate_id in backend.ca_certificates:
        existing = backend.ca_certificates[certificate_id]
        raise ResourceAlreadyExistsException(
            "The certificate is already provisioned or registered", existing.certificate_id, existing.arn
        )
    ca = backend.register_ca_certificate(
        ca_certificate=ca_pem,
        set_as_active=self._get_bool_param("setAsActive", False),
        registration_config=self._get_param("registrationConfig") or {},
    )
    ca.auto_registration_status = "ENABLE" if self._get_bool_param("allowAutoRegistration", False) else "DISABLE"
    ca.certificate_mode = mode
    return ActionResult({"certificateId": ca.certificate_id, "certificateArn": ca.arn})


def _description(ca: FakeCaCertificate) -> dict[str, Any]:
    description = ca.to_description_dict()
    description["autoRegistrationStatus"] = auto_registration_status(ca)
    description["certificateMode"] = getattr(ca, "certificate_mode", "DEFAULT")
    return description


def _describe_ca_certificate(self: IoTResponse) -> ActionResult:
    ca = self.iot_backend.describe_ca_certificate(certificate_id=self.path.split("/")[-1])
    return ActionResult({"certificateDescription": _description(ca), "registrationConfig": ca.registration_config})


def _list_ca_certificates(self: IoTResponse) -> ActionResult:
    # One page: an account holds at most a few dozen CA certificates per region.
    listed = [
        {
            "certificateArn": ca.arn,
            "certificateId": ca.certificate_id,
            "status": ca.status,
            "creationDate": ca.creation_date,
        }
        for ca in self.iot_backend.ca_certificates.values()
    ]
    return ActionResult({"certificates": listed})


def _update_ca_certificate(self: IoTResponse) -> ActionResult:
    certificate_id = self.path.split("/")[-1]
    backend = self.iot_backend
    backend.update_ca_certificate(
        certificate_id=certificate_id,
        new_status=self._get_param("newStatus"),
        config=self._get_param("registrationConfig"),
    )
    new_auto = self._get_param("newAutoRegistrationStatus")
    if new_auto is not None:
        backend.describe_ca_certificate(certificate_id).auto_registration_status = new_auto
    return EmptyResult()


_RESPONSES = {
    "get_registration_code": _get_registration_code,
    "delete_registration_code": _delete_registration_code,
    "register_ca_certificate": _register_ca_certificate,
    "describe_ca_certificate": _describe_ca_certificate,
    "list_ca_certificates": _list_ca_certificates,
    "update_ca_certificate": _update_ca_certificate,
}


def install() -> None:
    if not _patches.applied:
        for name, method in _RESPONSES.items():
            _patches.set(IoTResponse, name, method)


def uninstall() -> None:
    _patches.restore()
    _codes.clear()


def reset() -> None:
    _codes.clear()
