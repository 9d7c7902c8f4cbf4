"""What the local failover runs: the failover CNAME, its region TXT record and one health check per region.

Where the deployed health-checker stacks created Route 53 health checks (stack outputs ``HealthCheckId`` and
``CredentialsSecretArn``) and failover records, those are used: the record's name and TTL, each check's resource path
and failure threshold, and the secret the deployment stored for callers. Otherwise the plan uses local defaults. The
request interval is always the local one: Route 53's 10 or 30 seconds would make a drill take minutes.

The failover record's targets are the regions' IoT data endpoints (``<id>-ats.iot.<region>.amazonaws.com``); locally
each region's endpoint is its broker, served by the local DNS server as ``<region>.<zone>``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from iot_dr_local.dns_server import txt_value
from iot_dr_local.route53 import (
    FailoverRecord,
    HealthCheckConfig,
    failover_records_from_route53,
    health_check_from_route53,
)

ClientFactory = Callable[[str, str], Any]

_IOT_ENDPOINT_REGION = re.compile(r"\.iot\.([a-z0-9-]+)\.amazonaws\.com\.?$")
HEALTH_CHECK_PATH = "/v1/health-check"
DEFAULT_RECORD_TTL = 1
LOCAL_CHECKER_THING_PREFIX = "iot-dr-r53-checker-local-"
DEFAULT_FAILURE_THRESHOLD = 3


class FailoverPlanError(RuntimeError):
    """The deployed Route 53 configuration cannot be run locally; the message says what is wrong."""


@dataclass(frozen=True)
class FailoverSettings:
    """Local knobs. ``None`` means: as deployed in Route 53, or the local default when nothing is deployed."""

    zone: str = "iot-dr.test"
    record_label: str = "iot"
    record_ttl: int | None = None
    request_interval: float = 1.0
    failure_threshold: int | None = None
    mqtt_port: int = 8883
    dns_address: str = "127.0.0.1"
    dns_port: int = 15353


@dataclass(frozen=True)
class RegionPlan:
    region: str
    broker_name: str
    health_check: HealthCheckConfig | None
    secret: str
    checker_thing: str


@dataclass(frozen=True)
class FailoverPlan:
    source: str
    zone: str
    record: FailoverRecord
    region_txt: str
    primary: RegionPlan
    secondary: RegionPlan

    @property
    def txt_name(self) -> str:
        return f"_{self.record.name}"

    @property
    def regions(self) -> tuple[RegionPlan, RegionPlan]:
        return self.primary, self.secondary


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _broker_name(region: str, zone: str) -> str:
    return _absolute(f"{region}.{zone.rstrip('.')}")


def _checker_thing(region: str) -> str:
    return f"{LOCAL_CHECKER_THING_PREFIX}{region}"


def _regions_txt(primary: str, secondary: str) -> str:
    return txt_value(json.dumps({"primary": primary, "secondary": secondary}))


def default_plan(primary: str, secondary: str, settings: FailoverSettings) -> FailoverPlan:
    """Both regions checked with a fresh secret, ``<label>.<zone>`` pointing at the primary's broker."""
    zone = settings.zone.rstrip(".")
    threshold = settings.failure_threshold or DEFAULT_FAILURE_THRESHOLD
    plans = []
    for region in (primary, secondary):
        secret = secrets.token_urlsafe(24)
        check = HealthCheckConfig(
            f"local-{region}", f"{HEALTH_CHECK_PATH}?hashme={secret}", settings.request_interval, threshold
        )
        plans.append(RegionPlan(region, _broker_name(region, zone), check, secret, _checker_thing(region)))
    primary_plan, secondary_plan = plans
    record = FailoverRecord(
        name=_absolute(f"{settings.record_label}.{zone}"),
        primary_target=primary_plan.broker_name,
        secondary_target=secondary_plan.broker_name,
        primary_health_check_id=f"local-{primary}",
        secondary_health_check_id=f"local-{secondary}",
        ttl=settings.record_ttl or DEFAULT_RECORD_TTL,
    )
    return FailoverPlan("defaults", zone, record, _regions_txt(primary, secondary), primary_plan, secondary_plan)


@dataclass(frozen=True)
class _DeployedCheck:
    health_check_id: str
    secret_arn: str
    thing_name: str | None


def _deployed_check(cloudformation: Any, region: str) -> _DeployedCheck | None:
    """The health check a health-checker stack in ``region`` created, with the stack's credentials secret."""
    found = []
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if "HealthCheckId" in outputs and "CredentialsSecretArn" in outputs:
                found.append(
                    _DeployedCheck(
                        outputs["HealthCheckId"], outputs["CredentialsSecretArn"], outputs.get("CheckerThingName")
                    )
                )
    if len(found) > 1:
        raise FailoverPlanError(f"{len(found)} health-checker stacks with a Route 53 health check in {region}")
    return found[0] if found else None


def _deployed_secret(secretsmanager: Any, secret_arn: str) -> str:
    value = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    if not value.get("healthCheckSecret"):
        raise FailoverPlanError(f"secret {secret_arn} holds no healthCheckSecret")
    return str(value["healthCheckSecret"])


def _deployed_health_check(route53: Any, check_id: str, settings: FailoverSettings) -> HealthCheckConfig:
    config = health_check_from_route53(route53, check_id, request_interval=settings.request_interval)
    if "{{resolve:" in config.resource_path:
        raise FailoverPlanError(
            f"health check {check_id} has an unresolved dynamic reference in its resource path: "
            f"{config.resource_path.split('?')[0]}?..."
        )
    if settings.failure_threshold is not None:
        config = replace(config, failure_threshold=settings.failure_threshold)
    return config


def _target_region(target: str, regions: tuple[str, str]) -> str:
    match = _IOT_ENDPOINT_REGION.search(target)
    if match is None or match.group(1) not in regions:
        raise FailoverPlanError(f"failover target {target} is not the IoT endpoint of {' or '.join(regions)}")
    return match.group(1)


def _deployed_record(route53: Any, primary_check_id: str) -> tuple[str, FailoverRecord, str | None] | None:
    """The hosted zone, failover record and region TXT value whose PRIMARY answer uses ``primary_check_id``."""
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for zone in page["HostedZones"]:
            try:
                records = failover_records_from_route53(route53, zone["Id"])
            except ValueError as err:
                raise FailoverPlanError(f"hosted zone {zone['Name']}: {err}") from err
            for record in records:
                if record.primary_health_check_id == primary_check_id:
                    return zone["Name"].rstrip("."), record, _txt(route53, zone["Id"], f"_{record.name}")
    return None


def _txt(route53: Any, zone_id: str, name: str) -> str | None:
    found = route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType="TXT", MaxItems="1"
    )["ResourceRecordSets"]
    if found and found[0]["Name"] == name and found[0]["Type"] == "TXT":
        return str(found[0]["ResourceRecords"][0]["Value"])
    return None


def _local_record(
    route53: Any, primary: str, secondary: str, check_ids: tuple[str, str | None], settings: FailoverSettings
) -> tuple[str, FailoverRecord, str]:
    """The zone, failover record and region TXT value to serve: as deployed, with the brokers as targets."""
    primary_id, secondary_id = check_ids
    found = _deployed_record(route53, primary_id)
    if found is None:
        defaults = default_plan(primary, secondary, settings)
        record = replace(defaults.record, primary_health_check_id=primary_id, secondary_health_check_id=secondary_id)
        return defaults.zone, record, defaults.region_txt
    zone, record, deployed_txt = found
    regions = (primary, secondary)
    if (_target_region(record.primary_target, regions), _target_region(record.secondary_target, regions)) != regions:
        raise FailoverPlanError(f"failover record {record.name} does not point PRIMARY at {primary}")
    if record.secondary_health_check_id not in (None, secondary_id):
        raise FailoverPlanError(
            f"failover record {record.name} uses health check {record.secondary_health_check_id}, which no "
            f"health-checker stack in {secondary} created"
        )
    record = replace(
        record,
        primary_target=_broker_name(primary, zone),
        secondary_target=_broker_name(secondary, zone),
        ttl=settings.record_ttl or record.ttl,
    )
    return zone, record, deployed_txt or _regions_txt(primary, secondary)


def route53_plan(
    client: ClientFactory, primary: str, secondary: str, settings: FailoverSettings
) -> FailoverPlan | None:
    """The plan from what the deployed stacks created, or None when no region has a Route 53 health check."""
    deployed = {region: _deployed_check(client("cloudformation", region), region) for region in (primary, secondary)}
    primary_check, secondary_check = deployed[primary], deployed[secondary]
    if primary_check is None and secondary_check is None:
        return None
    if primary_check is None:
        raise FailoverPlanError(f"Route 53 health checks exist, but none for the primary region {primary}")
    route53 = client("route53", primary)
    check_ids = (primary_check.health_check_id, secondary_check.health_check_id if secondary_check else None)
    zone, record, txt = _local_record(route53, primary, secondary, check_ids, settings)
    plans = []
    for region, check in deployed.items():
        if check is None:
            plans.append(
                RegionPlan(region, _broker_name(region, zone), None, secrets.token_urlsafe(24), _checker_thing(region))
            )
            continue
        plans.append(
            RegionPlan(
                region,
                _broker_name(region, zone),
                _deployed_health_check(route53, check.health_check_id, settings),
                _deployed_secret(client("secretsmanager", region), check.secret_arn),
                check.thing_name or _checker_thing(region),
            )
        )
    return FailoverPlan("route53", zone, record, txt, plans[0], plans[1])


def failover_plan(client: ClientFactory, primary: str, secondary: str, settings: FailoverSettings) -> FailoverPlan:
    return route53_plan(client, primary, secondary, settings) or default_plan(primary, secondary, settings)
