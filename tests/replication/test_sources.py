"""The primary's event sources: CloudTrail capture, the scheduled drift repair and just-in-time registration."""

from __future__ import annotations

import datetime
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from identity_support import create_identity, parts_present
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr.core.dynamo_json import from_item
from iot_dr.core.event_types import EventType
from iot_dr_local.cloud import LocalCloud


def primary_items(cloud: LocalCloud, event_type: str) -> list[dict[str, Any]]:
    table = cloud.launch.primary_outputs["GlobalDynamoDBTableName"]
    items = cloud.client("dynamodb", PRIMARY).scan(TableName=table)["Items"]
    return [item for item in map(from_item, items) if item.get("eventType") == event_type]


def test_certificate_attached_after_creation_replicates(cloud: LocalCloud, primary: Any, secondary: Any) -> None:
    primary.create_thing(thingName="late-attach")
    eventually(lambda: _exists(secondary, "late-attach"))
    certificate = primary.create_keys_and_certificate(setAsActive=True)
    primary.attach_thing_principal(thingName="late-attach", principal=certificate["certificateArn"])
    # The attachment is its own change (a CloudTrail call), not swept up by a later reconciliation.
    principals = eventually(lambda: secondary.list_thing_principals(thingName="late-attach")["principals"], timeout=60)
    assert [p.split("/")[-1] for p in principals] == [certificate["certificateId"]]


def _exists(iot: Any, thing: str) -> bool:
    try:
        iot.describe_thing(thingName=thing)
    except iot.exceptions.ResourceNotFoundException:
        return False
    return True


def test_captured_certificates_carry_the_certificate_and_never_a_private_key(cloud: LocalCloud, primary: Any) -> None:
    certificate = primary.create_keys_and_certificate(setAsActive=True)
    assert cloud.wait_idle(60)
    captured = [
        c for c in primary_items(cloud, "CERTIFICATE_EVENT") if c["certificateId"] == certificate["certificateId"]
    ]
    assert captured
    assert captured[0]["certificatePem"] == certificate["certificatePem"]
    assert captured[0]["status"] == "ACTIVE"
    everything = json.dumps(primary_items(cloud, "CERTIFICATE_EVENT"))
    assert "PRIVATE KEY" not in everything
    assert certificate["keyPair"]["PrivateKey"] not in everything


def test_policy_versions_are_captured_with_their_documents(cloud: LocalCloud, primary: Any, secondary: Any) -> None:
    first = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    second = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iot:Connect", "Resource": "*"}]}
    primary.create_policy(policyName="versioned", policyDocument=json.dumps(first))
    primary.create_policy_version(policyName="versioned", policyDocument=json.dumps(second), setAsDefault=True)
    primary.set_default_policy_version(policyName="versioned", policyVersionId="1")

    def replicated() -> bool:
        try:
            versions = secondary.list_policy_versions(policyName="versioned")["policyVersions"]
            default = json.loads(secondary.get_policy(policyName="versioned")["policyDocument"])
        except secondary.exceptions.ResourceNotFoundException:
            return False
        return len(versions) == 2 and default == first

    eventually(replicated)


def _trigger_reconciliation(cloud: LocalCloud) -> None:
    rule = next(
        r["Name"]
        for r in cloud.client("events", PRIMARY).list_rules()["Rules"]
        if r.get("ScheduleExpression") and "ReconcileSchedule" in r["Name"]
    )
    cloud.scheduler.trigger(PRIMARY, rule)


def test_the_health_checkers_identity_never_reaches_the_secondary(
    cloud: LocalCloud, primary: Any, secondary: Any
) -> None:
    checker = create_identity(primary, "iot-dr-r53-checker-sources")
    # The same calls for a device: the pipeline saw and replicated them, so the checker was skipped, not missed.
    device = create_identity(primary, "identity-probe")
    # Thing, policy and certificate may reach the secondary in concurrent stream batches, in any order.
    eventually(lambda: parts_present(secondary, device) == ["thing", "policy", "certificate"], timeout=60)
    primary.update_certificate(certificateId=checker.certificate_id, newStatus="INACTIVE")
    primary.update_certificate(certificateId=checker.certificate_id, newStatus="ACTIVE")
    assert cloud.wait_idle(60)
    assert parts_present(secondary, checker) == []

    # The scheduled reconciliation repairs the device's replica and still leaves the checker out.
    (replica_arn,) = secondary.list_thing_principals(thingName=device.thing_name)["principals"]
    secondary.detach_thing_principal(thingName=device.thing_name, principal=replica_arn)
    _trigger_reconciliation(cloud)
    eventually(
        lambda: secondary.list_thing_principals(thingName=device.thing_name)["principals"] == [replica_arn], timeout=60
    )
    assert cloud.wait_idle(60)
    assert parts_present(secondary, checker) == []
    captured = json.dumps([item for kind in EventType for item in primary_items(cloud, str(kind))])
    assert device.certificate_id in captured
    assert checker.thing_name not in captured and checker.certificate_id not in captured


def test_scheduled_reconciliation_repairs_a_drifted_replica(cloud: LocalCloud, primary: Any, secondary: Any) -> None:
    primary.create_thing(thingName="drifting", attributePayload={"attributes": {"site": "lyon"}})
    certificate = primary.create_keys_and_certificate(setAsActive=True)
    primary.attach_thing_principal(thingName="drifting", principal=certificate["certificateArn"])
    eventually(
        lambda: _exists(secondary, "drifting") and secondary.list_thing_principals(thingName="drifting")["principals"]
    )
    assert cloud.wait_idle(60)
    # Drift the replica behind the pipeline's back: an operator "fixes" the secondary by hand.
    replica_arn = secondary.list_thing_principals(thingName="drifting")["principals"][0]
    secondary.detach_thing_principal(thingName="drifting", principal=replica_arn)
    secondary.update_thing(thingName="drifting", attributePayload={"attributes": {"site": "wrong"}, "merge": False})

    _trigger_reconciliation(cloud)
    eventually(lambda: secondary.list_thing_principals(thingName="drifting")["principals"] == [replica_arn])
    eventually(lambda: secondary.describe_thing(thingName="drifting")["attributes"] == {"site": "lyon"})


def _ca_and_device(common_name: str) -> tuple[str, str]:
    """A CA certificate and a device certificate it signed (PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitr test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    device_key = ec.generate_private_key(ec.SECP256R1())
    device = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(device_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem).decode(), device.public_bytes(pem).decode()


def test_just_in_time_registration_provisions_the_device_and_it_replicates(
    cloud: LocalCloud, primary: Any, secondary: Any
) -> None:
    ca_pem, device_pem = _ca_and_device("jitr-device-7")
    primary.register_ca_certificate(
        caCertificate=ca_pem, setAsActive=True, allowAutoRegistration=True, certificateMode="SNI_ONLY"
    )
    # IoT registers an auto-registration certificate as PENDING_ACTIVATION when the device first connects.
    registered = primary.register_certificate(certificatePem=device_pem, status="PENDING_ACTIVATION")
    assert cloud.wait_idle(60)
    description = primary.describe_certificate(certificateId=registered["certificateId"])["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert primary.list_thing_principals(thingName="jitr-device-7")["principals"] == [registered["certificateArn"]]
    eventually(
        lambda: (
            _exists(secondary, "jitr-device-7")
            and secondary.list_thing_principals(thingName="jitr-device-7")["principals"]
        )
    )
    replica = secondary.describe_certificate(certificateId=registered["certificateId"])["certificateDescription"]
    assert replica["status"] == "ACTIVE"
    policies = secondary.list_attached_policies(target=replica["certificateArn"])["policies"]
    assert [p["policyName"] for p in policies] == ["IoTDR-JITR_Policy"]
    assert SECONDARY in replica["certificateArn"]
