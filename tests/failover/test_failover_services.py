"""The local cloud's failover services: real brokers, real DNS, and Route 53 emulation probing the real handler."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from local_cloud_support import PRIMARY, SECONDARY
from waiting import eventually

from iot_dr_local.cloud import LocalCloud
from iot_dr_local.failover import FailoverServices
from iot_dr_local.failover_plan import FailoverSettings
from iot_dr_local.processes import find_binary
from iot_dr_local.route53 import Route53Emulator, proxy_event

# Long enough that the background loop probes once at start and then leaves the probing to the test.
IDLE_INTERVAL = 600.0
THRESHOLD = 2

pytestmark = pytest.mark.skipif(
    find_binary("mosquitto") is None or find_binary("knotd") is None,
    reason="mosquitto and knot are needed (apt-get install --no-install-recommends mosquitto knot)",
)


@pytest.fixture
def start_services(cloud: LocalCloud, work_dir: Path) -> Iterator[Any]:
    """Factory: start the failover services on an empty cloud with free ports; stopped at teardown."""
    started: list[FailoverServices] = []

    def start(**settings: Any) -> FailoverServices:
        defaults = {"request_interval": IDLE_INTERVAL, "failure_threshold": THRESHOLD, "mqtt_port": 0, "dns_port": 0}
        directory = Path(tempfile.mkdtemp(prefix="failover-", dir=work_dir))
        services = cloud.start_failover(directory, FailoverSettings(**{**defaults, **settings}))
        started.append(services)
        emulator = emulator_of(services)
        for region_plan in services.plan.regions:
            if region_plan.health_check is not None:
                # The loop's first probe runs at start; wait for it so the test's probes are counted alone.
                check_id = region_plan.health_check.health_check_id
                eventually(lambda check_id=check_id: emulator.probe_results(check_id), timeout=10)
        return services

    cloud.reset()
    yield start
    for services in started:
        services.stop()


def emulator_of(services: FailoverServices) -> Route53Emulator:
    assert services.emulator is not None
    return services.emulator


def cname(services: FailoverServices) -> str:
    assert services.dns is not None
    answer = services.dns.resolver().resolve(services.plan.record.name, "CNAME")
    return str(answer[0].target)


def check_id(services: FailoverServices, region: str) -> str:
    plan = {p.region: p for p in services.plan.regions}[region]
    assert plan.health_check is not None
    return plan.health_check.health_check_id


def assert_signed_by_local_ca(services: FailoverServices, pem: str) -> None:
    ca = x509.load_pem_x509_certificate(services.ca.cert_pem.encode())
    x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(ca)


def test_dns_serves_the_failover_cname_at_the_primary_broker_and_the_region_txt_record(
    start_services: Any,
) -> None:
    services = start_services()
    assert services.dns is not None
    resolver = services.dns.resolver()

    assert cname(services) == f"{PRIMARY}.iot-dr.test."
    assert str(resolver.resolve(f"{PRIMARY}.iot-dr.test", "A")[0]) == services.brokers[PRIMARY].endpoint.address
    assert str(resolver.resolve(f"{SECONDARY}.iot-dr.test", "A")[0]) == services.brokers[SECONDARY].endpoint.address
    txt = resolver.resolve("_iot.iot-dr.test", "TXT")[0]
    assert json.loads(b"".join(txt.strings)) == {"primary": PRIMARY, "secondary": SECONDARY}
    assert services.brokers[PRIMARY].endpoint.address != services.brokers[SECONDARY].endpoint.address


def test_each_region_registers_the_checker_identity_with_a_certificate_from_the_local_ca(
    cloud: LocalCloud, start_services: Any
) -> None:
    services = start_services()

    for region_plan in services.plan.regions:
        iot = cloud.client("iot", region_plan.region)
        [principal] = iot.list_thing_principals(thingName=region_plan.checker_thing)["principals"]
        certificate = iot.describe_certificate(certificateId=principal.rsplit("/", 1)[1])["certificateDescription"]
        assert certificate["status"] == "ACTIVE"
        assert_signed_by_local_ca(services, certificate["certificatePem"])
        [policy] = iot.list_attached_policies(target=principal)["policies"]
        document = json.loads(iot.get_policy(policyName=policy["policyName"])["policyDocument"])
        topics = (
            f"arn:aws:iot:{region_plan.region}:123456789012:topic/iot-dr/health-check/{region_plan.checker_thing}/*"
        )
        assert topics in [statement["Resource"] for statement in document["Statement"]]


def test_both_regions_are_healthy_when_the_real_handler_completes_its_mqtt_round_trip(start_services: Any) -> None:
    services = start_services()
    emulator = emulator_of(services)

    for region in (PRIMARY, SECONDARY):
        result = emulator.probe_once(check_id(services, region))
        assert (result.status, result.healthy) == (200, True)


def test_a_probe_without_the_right_secret_is_forbidden_and_counts_as_a_failure(start_services: Any) -> None:
    services = start_services()
    config = services.plan.primary.health_check
    assert config is not None
    probe = services.probes[PRIMARY]

    assert probe(proxy_event(replace(config, resource_path="/v1/health-check")))["statusCode"] == 403
    wrong = replace(config, health_check_id="wrong-secret", resource_path="/v1/health-check?hashme=wrong")
    assert services.dns is not None
    emulator = Route53Emulator(services.dns.updater())
    emulator.add_health_check(replace(wrong, failure_threshold=1), probe)
    result = emulator.probe_once("wrong-secret")

    assert (result.status, result.healthy) == (403, False)
    assert not emulator.healthy("wrong-secret")


def test_a_stopped_primary_broker_moves_the_cname_to_the_secondary_at_the_threshold_and_back_after_restart(
    start_services: Any,
) -> None:
    services = start_services()
    emulator, primary_check = emulator_of(services), check_id(services, PRIMARY)
    services.brokers[PRIMARY].stop(graceful=False)

    for _ in range(THRESHOLD - 1):
        assert emulator.probe_once(primary_check).status == 503
        assert cname(services) == f"{PRIMARY}.iot-dr.test."
    emulator.probe_once(primary_check)
    assert cname(services) == f"{SECONDARY}.iot-dr.test."

    services.brokers[PRIMARY].start()
    for _ in range(THRESHOLD):
        assert emulator.probe_once(primary_check).status == 200
    assert cname(services) == f"{PRIMARY}.iot-dr.test."
    assert [switch.to_target for switch in services.new_switches()] == [
        f"{SECONDARY}.iot-dr.test.",
        f"{PRIMARY}.iot-dr.test.",
    ]
    assert services.new_switches() == []


def test_a_device_certificate_from_the_local_ca_is_registered_in_both_regions(
    cloud: LocalCloud, start_services: Any
) -> None:
    services = start_services()

    device = cloud.register_device_certificate("sensor-7")

    pem = device.cert_path.read_text()
    assert_signed_by_local_ca(services, pem)
    for region in (PRIMARY, SECONDARY):
        description = cloud.client("iot", region).describe_certificate(certificateId=device.certificate_id)
        assert description["certificateDescription"]["status"] == "ACTIVE"
        assert description["certificateDescription"]["certificatePem"].strip() == pem.strip()


STAND_IN_TEMPLATE = {
    "Description": "Stands in for a health-checker stack: the outputs the failover services read.",
    "Parameters": {name: {"Type": "String"} for name in ("HealthCheckId", "CredentialsSecretArn", "CheckerThingName")},
    "Resources": {
        "Marker": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": "iot-dr-health-checker-stand-in", "Type": "String", "Value": "stand-in"},
        }
    },
    "Outputs": {
        name: {"Value": {"Ref": name}} for name in ("HealthCheckId", "CredentialsSecretArn", "CheckerThingName")
    },
}


def deploy_route53_failover(cloud: LocalCloud) -> dict[str, str]:
    """What the health-checker stacks create with a hosted zone: checks, failover records, region TXT record."""
    route53 = cloud.client("route53", PRIMARY)
    zone_id = route53.create_hosted_zone(Name="example.test", CallerReference="zone")["HostedZone"]["Id"]
    check_ids = {}
    for region in (PRIMARY, SECONDARY):
        secret = f"deployed-secret-{region}"
        secret_arn = cloud.client("secretsmanager", region).create_secret(
            Name="checker-credentials", SecretString=json.dumps({"healthCheckSecret": secret})
        )["ARN"]
        check_ids[region] = route53.create_health_check(
            CallerReference=region,
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": f"a1b2c3.execute-api.{region}.amazonaws.com",
                "Port": 443,
                "ResourcePath": f"/v1/health-check?hashme={secret}",
                "RequestInterval": 30,
                "FailureThreshold": 4,
            },
        )["HealthCheck"]["Id"]
        cloud.client("cloudformation", region).create_stack(
            StackName="R53HealthChecker20240101000000",
            TemplateBody=json.dumps(STAND_IN_TEMPLATE),
            Parameters=[
                {"ParameterKey": "HealthCheckId", "ParameterValue": check_ids[region]},
                {"ParameterKey": "CredentialsSecretArn", "ParameterValue": secret_arn},
                {"ParameterKey": "CheckerThingName", "ParameterValue": f"iot-dr-r53-checker-{region}"},
            ],
        )
        cloud.client("iot", region).create_thing(thingName=f"iot-dr-r53-checker-{region}")
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "iot.example.test",
                "Type": "CNAME",
                "TTL": 30,
                "SetIdentifier": f"iot-dr-{region}",
                "Failover": role,
                "HealthCheckId": check_ids[region],
                "ResourceRecords": [{"Value": f"a1b2c3d4e5f6g7-ats.iot.{region}.amazonaws.com"}],
            },
        }
        for role, region in (("PRIMARY", PRIMARY), ("SECONDARY", SECONDARY))
    ]
    changes.append(
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "_iot.example.test",
                "Type": "TXT",
                "TTL": 30,
                "ResourceRecords": [{"Value": json.dumps(json.dumps({"primary": PRIMARY, "secondary": SECONDARY}))}],
            },
        }
    )
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return check_ids


def test_health_checks_and_failover_records_the_stacks_created_are_served_with_the_brokers_as_targets(
    cloud: LocalCloud, start_services: Any
) -> None:
    check_ids = deploy_route53_failover(cloud)

    services = start_services(failure_threshold=None)

    assert services.plan.source == "route53"
    assert services.dns is not None
    answer = services.dns.resolver().resolve("iot.example.test", "CNAME")
    assert (str(answer[0].target), answer.rrset.ttl) == (f"{PRIMARY}.example.test.", 30)
    txt = services.dns.resolver().resolve("_iot.example.test", "TXT")[0]
    assert json.loads(b"".join(txt.strings)) == {"primary": PRIMARY, "secondary": SECONDARY}
    for region_plan in services.plan.regions:
        assert region_plan.health_check is not None
        assert region_plan.health_check.health_check_id == check_ids[region_plan.region]
        assert (region_plan.health_check.failure_threshold, region_plan.health_check.request_interval) == (
            4,
            IDLE_INTERVAL,
        )
        # The deployed resource path carries the deployed secret, which the checker accepts.
        assert emulator_of(services).probe_once(check_ids[region_plan.region]).status == 200
        principals = cloud.client("iot", region_plan.region).list_thing_principals(
            thingName=f"iot-dr-r53-checker-{region_plan.region}"
        )["principals"]
        assert len(principals) == 1
