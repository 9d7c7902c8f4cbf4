"""What the device gateway decides (``jitr_emulation.admit``) and how it answers on the wire (CONNACK, CONNECT)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from event_fixtures import load_event
from local_cloud_support import PRIMARY, SECONDARY

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.device_gateway import NOT_AUTHORIZED, SERVER_UNAVAILABLE, ProtocolError, connack, read_connect
from iot_dr_local.jitr_emulation import admit, certificate_id
from iot_dr_local.pki import LocalCA

# ------------------------------------------------------------------------------------------ wire format


def test_an_mqtt5_refusal_carries_the_reason_code_and_the_reason_string() -> None:
    packet = connack(5, NOT_AUTHORIZED, "certificate x is INACTIVE")
    text = b"certificate x is INACTIVE"
    properties = bytes([0x1F]) + len(text).to_bytes(2, "big") + text
    assert packet == bytes([0x20, 2 + 1 + len(properties), 0x00, 0x87, len(properties)]) + properties


def test_an_mqtt311_refusal_is_a_return_code() -> None:
    assert connack(4, NOT_AUTHORIZED, "ignored") == bytes([0x20, 2, 0, 5])
    assert connack(4, SERVER_UNAVAILABLE, "ignored") == bytes([0x20, 2, 0, 3])


def _reader(data: bytes) -> Any:
    stream = iter(data)

    def receive(count: int) -> bytes:
        return bytes(byte for _, byte in zip(range(count), stream, strict=False))

    return receive


def test_a_connect_is_read_whole_with_its_protocol_level() -> None:
    body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + b"\x00\x06device"
    packet = bytes([0x10, len(body)]) + body + b"\x82more"

    assert read_connect(_reader(packet)) == (bytes([0x10, len(body)]) + body, 5)


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x02\x00\x00",
        b"\x10\x0c\x00\x04MQTT\x04",
        b"\x10\x08\x00\x04ABCD\x04\x02\x00\x3c",
        b"\x10\xff\xff\xff\xff",
    ],
    ids=["publish first", "truncated", "not MQTT", "malformed length"],
)
def test_anything_but_a_connect_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_connect(_reader(data))


# ------------------------------------------------------------------------------------------- admission


@pytest.fixture
def iot(cloud: LocalCloud) -> Any:
    cloud.reset()
    return cloud.client("iot", PRIMARY)


def chain(ca: LocalCA, name: str, with_ca: bool = True) -> list[x509.Certificate]:
    device = x509.load_pem_x509_certificate(ca.issue_device(name).cert_pem.encode())
    return [device, x509.load_pem_x509_certificate(ca.cert_pem.encode())] if with_ca else [device]


def register_ca(iot: Any, ca: LocalCA, auto_registration: bool = True) -> str:
    return str(
        iot.register_ca_certificate(
            caCertificate=ca.cert_pem,
            setAsActive=True,
            allowAutoRegistration=auto_registration,
            certificateMode="SNI_ONLY",
        )["certificateId"]
    )


def captured(cloud: LocalCloud, topic_filter: str) -> str:
    """A queue receiving what the rules engine gets on ``topic_filter``."""
    sqs = cloud.client("sqs", PRIMARY)
    url = sqs.create_queue(QueueName=f"capture-{time.time_ns()}")["QueueUrl"]
    cloud.client("iot", PRIMARY).create_topic_rule(
        ruleName=f"capture_{time.time_ns()}",
        topicRulePayload={
            "sql": f"SELECT * FROM '{topic_filter}'",
            "actions": [{"sqs": {"queueUrl": url, "roleArn": "arn:aws:iam::123456789012:role/rules"}}],
        },
    )
    return str(url)


def test_the_first_connection_of_a_certificate_from_a_registered_ca_registers_it_pending_and_publishes_the_event(
    cloud: LocalCloud, iot: Any, tmp_path: Path
) -> None:
    ca = LocalCA(tmp_path / "ca")
    ca_id = register_ca(iot, ca)
    url = captured(cloud, "$aws/events/certificates/registered/#")
    presented = chain(ca, "sensor-1")

    first = admit(PRIMARY, presented)
    again = admit(PRIMARY, presented)

    assert (first.allowed, first.registered_just_in_time) == (False, True)
    assert "PENDING_ACTIVATION" in first.reason
    assert (again.allowed, again.registered_just_in_time) == (False, False)
    description = iot.describe_certificate(certificateId=first.certificate_id)["certificateDescription"]
    assert description["status"] == "PENDING_ACTIVATION"
    assert cloud.wait_idle(30)
    messages = cloud.client("sqs", PRIMARY).receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    [payload] = [json.loads(message["Body"]) for message in messages]
    assert set(payload) == set(load_event("registry/certificate_registered.json"))
    assert (payload["certificateId"], payload["caCertificateId"]) == (first.certificate_id, ca_id)
    assert payload["certificateStatus"] == "PENDING_ACTIVATION"

    iot.update_certificate(certificateId=first.certificate_id, newStatus="ACTIVE")
    assert admit(PRIMARY, presented).allowed


def test_a_ca_without_auto_registration_registers_nothing(iot: Any, tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    ca_id = register_ca(iot, ca, auto_registration=False)

    admission = admit(PRIMARY, chain(ca, "sensor-2"))

    assert not admission.allowed
    assert f"its CA certificate {ca_id} is ACTIVE with auto-registration DISABLE" in admission.reason
    assert iot.list_certificates()["certificates"] == []


def test_jitr_is_per_region(cloud: LocalCloud, iot: Any, tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    register_ca(iot, ca)

    admission = admit(SECONDARY, chain(ca, "sensor-3"))

    assert not admission.allowed and not admission.registered_just_in_time
    assert "not registered in us-west-2 and was not signed by a CA certificate registered there" in admission.reason


def test_an_inactive_certificate_is_refused_with_its_status(iot: Any, tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    presented = chain(ca, "sensor-4", with_ca=False)
    pem = presented[0].public_bytes(serialization.Encoding.PEM).decode()
    iot.register_certificate_without_ca(certificatePem=pem, status="INACTIVE")

    admission = admit(PRIMARY, presented)

    assert not admission.allowed
    assert admission.reason == f"certificate {certificate_id(presented[0])} is INACTIVE in us-east-1, not ACTIVE"


def test_a_certificate_registered_without_ca_is_admitted_whatever_its_issuer(iot: Any, tmp_path: Path) -> None:
    # Multi-account registration: how the solution registers replicated certificates in the secondary.
    presented = chain(LocalCA(tmp_path / "unregistered"), "sensor-5", with_ca=False)
    pem = presented[0].public_bytes(serialization.Encoding.PEM).decode()
    iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")

    assert admit(PRIMARY, presented).allowed
