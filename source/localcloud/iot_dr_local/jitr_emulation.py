"""What AWS IoT decides when a device presents a client certificate: connect, refuse, or register it just in time.

AWS IoT looks the presented certificate up by its ID (the SHA-256 of its DER encoding). A registered ACTIVE
certificate may connect; any other registered status is refused. An unregistered certificate signed by a CA
certificate registered in the region, ACTIVE and with auto-registration enabled, is registered as
``PENDING_ACTIVATION`` -- which publishes ``$aws/events/certificates/registered/<caCertificateId>`` to the rules
engine, where the solution's JITR rule invokes its function -- and this first connection is refused. The device must
present the CA certificate after its own on that first connection. Everything else is refused.

AWS documentation: https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html (the first
connection, the CA certificate in the chain, the registered event) and
https://docs.aws.amazon.com/iot/latest/developerguide/x509-client-certs.html (certificate status on connect).

The registration is made on moto's backend, not through the API: in AWS it is no API call of the account (no
CloudTrail record), and the solution's replication must not see it as one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iot.exceptions import ResourceAlreadyExistsException
from moto.iot.models import IoTBackend, iot_backends

from iot_dr_local import locking
from iot_dr_local.ca_registration import auto_registration_status, issuing_ca

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """The outcome of one connection attempt: ``allowed``, and the reason for the device (sent in the CONNACK)."""

    region: str
    certificate_id: str
    allowed: bool
    reason: str
    registered_just_in_time: bool = False


def certificate_id(certificate: x509.Certificate) -> str:
    """AWS IoT's certificate ID: the SHA-256 of the DER encoding, in lower-case hex."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def admit(region: str, chain: list[x509.Certificate], account_id: str = DEFAULT_ACCOUNT_ID) -> Admission:
    """Decide on a device presenting ``chain`` (its certificate first) to ``region``'s endpoint.

    Registers the certificate as PENDING_ACTIVATION when just-in-time registration applies (see the module).
    Raises ``ValueError`` for an empty chain.
    """
    if not chain:
        raise ValueError("the device presented no certificate")
    with locking.SERVICE_LOCK.held():
        admission = _admit(iot_backends[account_id][region], region, chain)
    LOG.info(
        "device connection %s",
        "accepted" if admission.allowed else "refused",
        extra={"region": region, "certificateId": admission.certificate_id, "reason": admission.reason},
    )
    return admission


def _admit(backend: IoTBackend, region: str, chain: list[x509.Certificate]) -> Admission:
    device = chain[0]
    device_id = certificate_id(device)
    registered = backend.certificates.get(device_id)
    if registered is not None:
        if registered.status == "ACTIVE":
            return Admission(region, device_id, True, "certificate is ACTIVE")
        return Admission(
            region, device_id, False, f"certificate {device_id} is {registered.status} in {region}, not ACTIVE"
        )
    ca = issuing_ca(backend, device)
    if ca is None:
        return Admission(
            region,
            device_id,
            False,
            f"certificate {device_id} is not registered in {region} and was not signed by a CA certificate "
            f"registered there",
        )
    if ca.status != "ACTIVE" or auto_registration_status(ca) != "ENABLE":
        return Admission(
            region,
            device_id,
            False,
            f"certificate {device_id} is not registered in {region}; its CA certificate {ca.certificate_id} is "
            f"{ca.status} with auto-registration {auto_registration_status(ca)}",
        )
    if not any(certificate_id(presented) == ca.certificate_id for presented in chain[1:]):
        return Admission(
            region,
            device_id,
            False,
            f"certificate {device_id} is not registered in {region}: to register it just in time, present the CA "
            f"certificate {ca.certificate_id} after the device certificate",
        )
    # A concurrent connection of the same device may have registered it a moment ago.
    with contextlib.suppress(ResourceAlreadyExistsException):
        backend.register_certificate(_pem(device), ca.certificate_pem, False, "PENDING_ACTIVATION")
    return Admission(
        region,
        device_id,
        False,
        f"certificate {device_id} registered just in time in {region} as PENDING_ACTIVATION; connect again once "
        f"it is activated",
        registered_just_in_time=True,
    )
