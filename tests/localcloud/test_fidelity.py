"""Each divergence of moto 5.2.5 from AWS that the local cloud corrects, run against both.

Every test runs twice on the same moto server: once as plain moto (expected to fail: ``xfail(strict=True)``
proves the divergence is still there) and once with the local cloud's fixes installed. The docstring of each
test cites the AWS documentation page that defines the behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from iot_dr_local import lambda_runtime, moto_fixes
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.moto_fixes import iot_registry

REGION = "us-east-1"
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def diverges(reason: str) -> pytest.MarkDecorator:
    """Run the test on plain moto (must fail) and on the local cloud (must pass)."""
    return pytest.mark.parametrize(
        "fixed",
        [
            pytest.param(
                False, marks=pytest.mark.xfail(strict=True, reason=f"moto 5.2.5 diverges: {reason}"), id="plain-moto"
            ),
            pytest.param(True, id="local-cloud"),
        ],
        indirect=True,
    )


@pytest.fixture
def fixed(request: pytest.FixtureRequest, aws: str) -> Iterator[bool]:
    if request.param:
        moto_fixes.install()
    yield request.param
    moto_fixes.uninstall()


@pytest.fixture
def iot() -> Any:
    return boto3.client("iot", region_name=REGION)


@pytest.fixture
def data() -> Any:
    return boto3.client("iot-data", region_name=REGION)


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def shadow(data: Any, thing: str, name: str | None = None) -> dict[str, Any]:
    options = {"shadowName": name} if name else {}
    return dict(json.loads(data.get_thing_shadow(thingName=thing, **options)["payload"].read()))


def update(data: Any, thing: str, state: Any, name: str | None = None) -> None:
    options = {"shadowName": name} if name else {}
    data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": state}).encode(), **options)


# ------------------------------------------------------------------------------------------- shadows


@diverges("desired: null leaves the desired section in place")
def test_desired_null_deletes_the_desired_section(fixed: bool, iot: Any, data: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html#device-shadow-empty-fields"""
    iot.create_thing(thingName="lamp")
    update(data, "lamp", {"desired": {"on": True}, "reported": {"on": False}})

    update(data, "lamp", {"desired": None})

    state = shadow(data, "lamp")["state"]
    assert "desired" not in state
    assert state["reported"] == {"on": False}


@diverges("deleting a thing deletes its shadows")
def test_deleting_a_thing_keeps_its_shadows(fixed: bool, iot: Any, data: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/developerguide/iot-device-shadows.html: shadows are addressed by
    thing name and deleted with DeleteThingShadow, not with the thing."""
    iot.create_thing(thingName="lamp")
    update(data, "lamp", {"reported": {"on": True}})
    update(data, "lamp", {"reported": {"mode": "eco"}}, name="config")

    iot.delete_thing(thingName="lamp")

    assert shadow(data, "lamp")["state"]["reported"] == {"on": True}
    assert shadow(data, "lamp", "config")["state"]["reported"] == {"mode": "eco"}


@diverges("a shadow needs a registered thing")
def test_shadow_of_an_unregistered_thing_is_allowed(fixed: bool, data: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/developerguide/iot-device-shadows.html (shadows need no registry
    entry; the guide's own shadow test writes shadows for unregistered names)."""
    update(data, "unregistered-1", {"reported": {"t": 1}})
    update(data, "unregistered-1", {"desired": {"t": 2}}, name="cfg")

    assert shadow(data, "unregistered-1")["state"] == {"reported": {"t": 1}}
    assert data.list_named_shadows_for_thing(thingName="unregistered-1")["results"] == ["cfg"]


@diverges("shadow state over 8 KB is stored")
def test_shadow_state_over_8_kb_is_refused(fixed: bool, iot: Any, data: Any) -> None:
    """https://docs.aws.amazon.com/general/latest/gr/iot-core.html#device-shadow-limits (8 KB of desired and
    reported state) and https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html
    (413 "The payload exceeds the maximum size allowed"), and
    https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_UpdateThingShadow.html
    (RequestEntityTooLargeException)."""
    iot.create_thing(thingName="big")
    overhead = len(json.dumps({"reported": {"v": ""}}, separators=(",", ":")))
    update(data, "big", {"reported": {"v": "x" * (8192 - overhead)}})

    with pytest.raises(ClientError) as err:
        update(data, "big", {"desired": {"w": 1}})

    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error_code(err) == "RequestEntityTooLargeException"
    assert shadow(data, "big")["version"] == 1


@diverges("nesting deeper than 6 levels is stored")
def test_shadow_nesting_deeper_than_six_levels_is_refused(fixed: bool, iot: Any, data: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html
    ("JSON contains too many levels of nesting; maximum is 6")."""
    iot.create_thing(thingName="deep")
    six: dict[str, Any] = {"l6": 1}
    for level in range(5, 0, -1):
        six = {f"l{level}": six}
    update(data, "deep", {"reported": six})

    with pytest.raises(ClientError) as err:
        update(data, "deep", {"reported": {"l0": six}})

    assert error_code(err) == "InvalidRequestException"
    assert "maximum is 6" in str(err.value)


# ------------------------------------------------------------------------------------------ registry


@diverges("a re-created thing inherits the deleted thing's group memberships")
def test_recreated_thing_has_no_old_group_memberships(fixed: bool, iot: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThing.html: the thing, and with it its
    memberships, is deleted."""
    iot.create_thing_group(thingGroupName="floor-1")
    iot.create_thing(thingName="lamp")
    iot.add_thing_to_thing_group(thingGroupName="floor-1", thingName="lamp")

    iot.delete_thing(thingName="lamp")
    iot.create_thing(thingName="lamp")

    assert iot.list_thing_groups_for_thing(thingName="lamp")["thingGroups"] == []
    assert iot.list_things_in_thing_group(thingGroupName="floor-1")["things"] == []


@pytest.mark.parametrize("name", ["with space", "with.dot"])
@diverges("thing names outside [a-zA-Z0-9:_-]+ are accepted")
def test_thing_names_outside_the_documented_pattern_are_refused(fixed: bool, iot: Any, name: str) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html (thingName pattern)."""
    with pytest.raises(ClientError) as err:
        iot.create_thing(thingName=name)
    assert error_code(err) == "InvalidRequestException"


@diverges("CreateThing of an existing name replaces the thing")
def test_creating_an_existing_thing_is_idempotent_only_with_the_same_configuration(fixed: bool, iot: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html: the same name and configuration
    succeed again, the same name with a different configuration raises ResourceAlreadyExistsException."""
    first = iot.create_thing(thingName="meter", attributePayload={"attributes": {"serial": "1"}})

    again = iot.create_thing(thingName="meter", attributePayload={"attributes": {"serial": "1"}})
    with pytest.raises(ClientError) as err:
        iot.create_thing(thingName="meter", attributePayload={"attributes": {"serial": "2"}})

    assert again["thingId"] == first["thingId"]
    assert error_code(err) == "ResourceAlreadyExistsException"
    assert iot.describe_thing(thingName="meter")["attributes"] == {"serial": "1"}


@pytest.mark.parametrize(
    "attributes", [{"colour": "grün"}, {"name with space": "x"}, {"ok": "spaces are not allowed"}], ids=str
)
@diverges("attribute names and values outside their patterns are accepted")
def test_attributes_outside_their_documented_patterns_are_refused(
    fixed: bool, iot: Any, attributes: dict[str, str]
) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_AttributePayload.html (name and value patterns)."""
    with pytest.raises(ClientError) as err:
        iot.create_thing(thingName="lamp", attributePayload={"attributes": attributes})
    assert error_code(err) == "InvalidRequestException"
    iot.create_thing(thingName="lamp")
    with pytest.raises(ClientError):
        iot.update_thing(thingName="lamp", attributePayload={"attributes": attributes, "merge": True})


@diverges("any number of attributes is accepted on a thing without a type")
def test_a_thing_without_a_type_has_at_most_three_attributes(fixed: bool, iot: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html ("up to three name/value
    pairs") and https://docs.aws.amazon.com/iot/latest/developerguide/thing-types.html (50 with a thing type)."""
    four = {f"a{i}": "v" for i in range(4)}
    with pytest.raises(ClientError) as err:
        iot.create_thing(thingName="plain", attributePayload={"attributes": four})
    assert error_code(err) == "InvalidRequestException"
    iot.create_thing(thingName="plain", attributePayload={"attributes": dict(list(four.items())[:3])})
    with pytest.raises(ClientError):
        iot.update_thing(thingName="plain", attributePayload={"attributes": {"a3": "v"}, "merge": True})

    iot.create_thing_type(thingTypeName="typed")
    iot.create_thing(thingName="typed-1", thingTypeName="typed", attributePayload={"attributes": four})
    with pytest.raises(ClientError):
        iot.create_thing(
            thingName="typed-2",
            thingTypeName="typed",
            attributePayload={"attributes": {f"a{i}": "v" for i in range(51)}},
        )


@diverges("a thing type that is not deprecated, or only just deprecated, is deleted")
def test_delete_thing_type_needs_five_minutes_of_deprecation(
    fixed: bool, iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThingType.html (deprecate, wait at least
    five minutes, then delete)."""
    iot.create_thing_type(thingTypeName="legacy")
    with pytest.raises(ClientError) as err:
        iot.delete_thing_type(thingTypeName="legacy")
    assert error_code(err) == "InvalidRequestException"

    iot.deprecate_thing_type(thingTypeName="legacy")
    with pytest.raises(ClientError):
        iot.delete_thing_type(thingTypeName="legacy")

    monkeypatch.setenv(iot_registry.THING_TYPE_DELETE_WAIT_ENV, "0")
    iot.delete_thing_type(thingTypeName="legacy")
    assert iot.list_thing_types()["thingTypes"] == []


@diverges("a thing type still used by things is deleted")
def test_delete_thing_type_refuses_a_type_still_in_use(fixed: bool, iot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThingType.html (no things may be
    associated with the type)."""
    monkeypatch.setenv(iot_registry.THING_TYPE_DELETE_WAIT_ENV, "0")
    iot.create_thing_type(thingTypeName="legacy")
    iot.create_thing(thingName="old", thingTypeName="legacy")
    iot.deprecate_thing_type(thingTypeName="legacy")

    with pytest.raises(ClientError) as err:
        iot.delete_thing_type(thingTypeName="legacy")

    assert error_code(err) == "InvalidRequestException"
    iot.delete_thing(thingName="old")
    iot.delete_thing_type(thingTypeName="legacy")


@diverges("thingPrincipalType is dropped")
def test_exclusive_thing_principal_is_kept_and_listed(fixed: bool, iot: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/apireference/API_AttachThingPrincipal.html and
    https://docs.aws.amazon.com/iot/latest/apireference/API_ListThingPrincipalsV2.html"""
    certificate = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    shared = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    for thing in ("lamp", "switch"):
        iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName="lamp", principal=certificate, thingPrincipalType="EXCLUSIVE_THING")
    iot.attach_thing_principal(thingName="lamp", principal=shared)

    objects = iot.list_thing_principals_v2(thingName="lamp")["thingPrincipalObjects"]
    assert sorted(objects, key=lambda o: o["principal"] != certificate) == [
        {"principal": certificate, "thingPrincipalType": "EXCLUSIVE_THING"},
        {"principal": shared, "thingPrincipalType": "NON_EXCLUSIVE_THING"},
    ]
    exclusive = iot.list_thing_principals_v2(thingName="lamp", thingPrincipalType="EXCLUSIVE_THING")
    assert [o["principal"] for o in exclusive["thingPrincipalObjects"]] == [certificate]
    things = iot.list_principal_things_v2(principal=certificate)["principalThingObjects"]
    assert things == [{"thingName": "lamp", "thingPrincipalType": "EXCLUSIVE_THING"}]
    with pytest.raises(ClientError) as err:
        iot.attach_thing_principal(thingName="switch", principal=certificate)
    assert error_code(err) == "InvalidRequestException"


@diverges("a Cognito identity unknown to moto's Cognito is refused as a policy target")
def test_cognito_identity_is_a_valid_attach_policy_target(fixed: bool, iot: Any) -> None:
    """https://docs.aws.amazon.com/iot/latest/developerguide/cog-iot-policies.html (AttachPolicy on the
    identity ID) and https://docs.aws.amazon.com/iot/latest/apireference/API_AttachPolicy.html"""
    identity = "us-east-1:0f0e1d2c-3b4a-5968-7766-554433221100"
    iot.create_policy(policyName="app-users", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))

    iot.attach_policy(policyName="app-users", target=identity)

    assert iot.list_targets_for_policy(policyName="app-users")["targets"] == [identity]
    assert [p["policyName"] for p in iot.list_attached_policies(target=identity)["policies"]] == ["app-users"]


# ------------------------------------------------------------------------------------------ Route 53


@diverges("HealthCheckVersion stays 1 and an edit against an older version overwrites a newer one")
def test_update_health_check_versions_the_check_and_refuses_a_stale_edit(fixed: bool) -> None:
    """https://docs.aws.amazon.com/Route53/latest/APIReference/API_UpdateHealthCheck.html (HealthCheckVersion,
    HealthCheckVersionMismatch)"""
    route53 = boto3.client("route53", region_name=REGION)
    check = route53.create_health_check(
        CallerReference="edits",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "example.com", "ResourcePath": "/v1/a"},
    )["HealthCheck"]
    assert check["HealthCheckVersion"] == 1

    updated = route53.update_health_check(HealthCheckId=check["Id"], HealthCheckVersion=1, ResourcePath="/v1/b")

    assert updated["HealthCheck"]["HealthCheckVersion"] == 2
    with pytest.raises(ClientError) as stale:
        route53.update_health_check(HealthCheckId=check["Id"], HealthCheckVersion=1, ResourcePath="/v1/c")
    assert error_code(stale) == "HealthCheckVersionMismatch"
    assert stale.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    stored = route53.get_health_check(HealthCheckId=check["Id"])["HealthCheck"]
    assert (stored["HealthCheckConfig"]["ResourcePath"], stored["HealthCheckVersion"]) == ("/v1/b", 2)


# ------------------------------------------------------------------------------------------ DynamoDB


@pytest.fixture
def table() -> str:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "items"


@diverges("items between 405,000 bytes and 400 KB are refused, by moto's own size measure")
def test_dynamodb_items_up_to_400_kb_are_stored_and_larger_ones_refused(fixed: bool, table: str) -> None:
    """https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html (400 KB including
    attribute names) and .../CapacityUnitCalculations.html (how items are sized)."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    # "k" + "a" (attribute names, 1 byte each) + "1" (the key, 1 byte) + the string = 409,600 bytes.
    value = "x" * (400 * 1024 - 3)
    dynamodb.put_item(TableName=table, Item={"k": {"S": "1"}, "a": {"S": value}})

    with pytest.raises(ClientError) as err:
        dynamodb.put_item(TableName=table, Item={"k": {"S": "2"}, "a": {"S": value + "x"}})

    assert error_code(err) == "ValidationException"
    assert "Item size has exceeded the maximum allowed size" in str(err.value)


@diverges("numbers with more than 38 significant digits are stored")
def test_dynamodb_numbers_keep_at_most_38_significant_digits(fixed: bool, table: str) -> None:
    """https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
    ("Numbers can have up to 38 digits of precision. Exceeding this results in an exception.")."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.put_item(TableName=table, Item={"k": {"S": "38"}, "n": {"N": "1" * 38 + "000"}})

    with pytest.raises(ClientError) as err:
        dynamodb.put_item(TableName=table, Item={"k": {"S": "42"}, "n": {"N": "1" * 42}})

    assert error_code(err) == "ValidationException"


# -------------------------------------------------------------------------------------------- Lambda

ECHO = "def handler(event, context):\n    return {'size': len(str(event)), 'blob': 'x' * event.get('reply', 0)}\n"


@pytest.fixture
def echo(fixed: bool, package: Callable[[dict[str, str]], bytes], dispatcher: Dispatcher) -> Iterator[str]:
    """A function that answers with ``reply`` bytes; run by the local cloud's runtime when fixed."""
    if fixed:
        lambda_runtime.install("unused", dispatcher)
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="echo", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY))["Role"]["Arn"]
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="echo",
        Runtime="python3.11",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": package({"index.py": ECHO})},
    )
    yield "echo"
    if fixed:
        lambda_runtime.stop()


@pytest.mark.parametrize(
    ("invocation_type", "limit"), [("RequestResponse", 6 * 1024 * 1024), ("Event", 1024 * 1024)], ids=str
)
@diverges("invocation payloads over Lambda's limits are accepted")
def test_lambda_refuses_payloads_over_the_invocation_limits(
    fixed: bool, echo: str, invocation_type: str, limit: int
) -> None:
    """https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (6 MB synchronous, 1 MB asynchronous;
    RequestTooLargeException, HTTP 413)."""
    payload = json.dumps({"data": "x" * limit}).encode()

    with pytest.raises(ClientError) as err:
        boto3.client("lambda", region_name=REGION).invoke(
            FunctionName=echo, InvocationType=invocation_type, Payload=payload
        )

    assert error_code(err) == "RequestTooLargeException"


@diverges("responses over 6 MB are returned")
def test_lambda_response_over_six_mb_is_a_function_error(fixed: bool, echo: str) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (6 MB response, synchronous)."""
    client = boto3.client("lambda", region_name=REGION)
    small = client.invoke(FunctionName=echo, Payload=json.dumps({"reply": 10}).encode())
    assert "FunctionError" not in small

    response = client.invoke(FunctionName=echo, Payload=json.dumps({"reply": 6 * 1024 * 1024}).encode())

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"
