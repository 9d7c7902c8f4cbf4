"""How the solution recognises a health checker's own identity, which never leaves its region."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iot_dr.core.event_types import EventType
from iot_dr.health import checker_credentials
from iot_dr.health.checker_identity import (
    is_checker_certificate,
    is_checker_snapshot,
    policy_name,
    without_checker_things,
)

CHECKER = "iot-dr-r53-checker-0f3c"


def issued_from_csr(csr_pem: str) -> str:
    """A certificate carrying the CSR's subject and key, as IoT issues one from CreateCertificateFromCsr."""
    request = x509.load_pem_x509_csr(csr_pem.encode())
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Amazon Web Services")]))
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_the_checkers_certificate_is_recognised_from_its_subject_and_a_devices_is_not() -> None:
    checker_pem = issued_from_csr(checker_credentials.new_key_and_csr(CHECKER)[1])
    device_pem = issued_from_csr(checker_credentials.new_key_and_csr("sensor-17")[1])

    assert is_checker_certificate(checker_pem)
    assert not is_checker_certificate(device_pem)
    assert not is_checker_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize(
    ("body", "skipped"),
    [
        ({"eventType": EventType.THING, "thingName": CHECKER}, True),
        ({"eventType": EventType.THING_PRINCIPALS, "thingName": CHECKER}, True),
        ({"eventType": EventType.POLICY, "policyName": policy_name(CHECKER)}, True),
        ({"eventType": EventType.POLICY_TARGETS, "target": "arn", "policies": [policy_name(CHECKER)]}, True),
        ({"eventType": EventType.THING, "thingName": "sensor-17"}, False),
        # A device's own policy whose name merely starts like a checker thing's, without the policy suffix.
        ({"eventType": EventType.POLICY, "policyName": f"{CHECKER}-custom"}, False),
        ({"eventType": EventType.POLICY_TARGETS, "target": "arn", "policies": ["sensors"]}, False),
        # A deleted certificate carries no PEM: its deletion reaches the secondary, which has nothing to delete.
        ({"eventType": EventType.CERTIFICATE, "certificateId": "ab" * 32, "exists": False}, False),
    ],
)
def test_snapshots_of_the_checkers_identity_are_recognised(body: dict[str, object], skipped: bool) -> None:
    assert is_checker_snapshot(body) is skipped


def test_fleet_enumerations_leave_the_checker_things_out_lazily() -> None:
    def names() -> Iterator[str]:
        yield "sensor-1"
        yield CHECKER
        yield "sensor-2"
        raise AssertionError("read past what was consumed")

    remaining = without_checker_things(names())
    assert [next(remaining), next(remaining)] == ["sensor-1", "sensor-2"]
