"""The health checker's own IoT identity: a thing, an active certificate and a policy limited to its topics.

Created at deploy time by a custom resource, so no private key is ever packaged, uploaded to S3, returned to
CloudFormation or logged: the key goes straight from ``CreateKeysAndCertificate`` into Secrets Manager, together with
a freshly generated secret that callers of the health-check API must present. On stack deletion everything is
removed again: policy detached and deleted, certificate deactivated and deleted, thing deleted.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from iot_dr import custom_resource
from iot_dr.aws import error_code

LOG = logging.getLogger(__name__)

_DETACH_SETTLE_ATTEMPTS = 10


def policy_name(thing_name: str) -> str:
    return f"{thing_name}-policy"


def policy_document(partition: str, region: str, account_id: str, thing_name: str) -> dict[str, Any]:
    """Connect only with client ids ``<thing>-*``; publish, subscribe and receive only under its own topic."""
    prefix = f"arn:{partition}:iot:{region}:{account_id}"
    topic_root = f"iot-dr/health-check/{thing_name}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{prefix}:client/{thing_name}-*"},
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": f"{prefix}:topic/{topic_root}/*",
            },
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{prefix}:topicfilter/{topic_root}/*"},
        ],
    }


def _ignore_missing(call: Callable[[], Any]) -> None:
    """Deletion is idempotent: a resource that is already gone is what we wanted."""
    try:
        call()
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise


def create_identity(
    iot: Any, secretsmanager: Any, thing_name: str, secret_arn: str, partition: str, region: str, account_id: str
) -> dict[str, str]:
    """Create the identity and store its credentials; returns only non-secret attributes for the stack."""
    name = policy_name(thing_name)
    iot.create_thing(thingName=thing_name)
    iot.create_policy(
        policyName=name, policyDocument=json.dumps(policy_document(partition, region, account_id, thing_name))
    )
    keys = iot.create_keys_and_certificate(setAsActive=True)
    certificate_arn = keys["certificateArn"]
    try:
        iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
    except ClientError:
        # Not yet reachable through the thing, so the Delete that follows a failed Create could not find it.
        _delete_certificate(iot, certificate_arn, keys["certificateId"])
        raise
    iot.attach_policy(policyName=name, target=certificate_arn)
    secretsmanager.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps(
            {
                "certificatePem": keys["certificatePem"],
                "privateKey": keys["keyPair"]["PrivateKey"],
                "healthCheckSecret": secrets.token_urlsafe(32),
            }
        ),
    )
    LOG.info("checker identity created", extra={"thing_name": thing_name, "certificate_id": keys["certificateId"]})
    return _attributes(iot, thing_name, keys["certificateId"])


def _attributes(iot: Any, thing_name: str, certificate_id: str) -> dict[str, str]:
    return {
        "ThingName": thing_name,
        "PolicyName": policy_name(thing_name),
        "CertificateId": certificate_id,
        "Endpoint": iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"],
    }


def describe_identity(iot: Any, thing_name: str) -> dict[str, str]:
    principals = iot.list_thing_principals(thingName=thing_name)["principals"]
    return _attributes(iot, thing_name, principals[0].rsplit("/", 1)[-1] if principals else "")


def _delete_certificate(iot: Any, certificate_arn: str, certificate_id: str) -> None:
    _ignore_missing(partial(iot.update_certificate, certificateId=certificate_id, newStatus="INACTIVE"))
    # DetachThingPrincipal is eventually consistent: the certificate can look attached for a few seconds.
    for attempt in range(1, _DETACH_SETTLE_ATTEMPTS + 1):
        try:
            _ignore_missing(partial(iot.delete_certificate, certificateId=certificate_id))
            return
        except ClientError as err:
            if error_code(err) != "DeleteConflictException" or attempt == _DETACH_SETTLE_ATTEMPTS:
                raise
            LOG.info("certificate still attached, waiting", extra={"certificate_arn": certificate_arn})
            time.sleep(min(attempt, 5))


def delete_identity(iot: Any, thing_name: str) -> None:
    """Remove the thing, its certificates and the policy; anything already gone is skipped."""
    name = policy_name(thing_name)
    try:
        principals = iot.list_thing_principals(thingName=thing_name)["principals"]
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        principals = []
    for certificate_arn in principals:
        certificate_id = certificate_arn.rsplit("/", 1)[-1]
        _ignore_missing(partial(iot.detach_policy, policyName=name, target=certificate_arn))
        _ignore_missing(partial(iot.detach_thing_principal, thingName=thing_name, principal=certificate_arn))
        _delete_certificate(iot, certificate_arn, certificate_id)
    _ignore_missing(partial(iot.delete_thing, thingName=thing_name))
    try:
        versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        versions = []
    for version in versions:
        if not version["isDefaultVersion"]:
            _ignore_missing(partial(iot.delete_policy_version, policyName=name, policyVersionId=version["versionId"]))
    if versions:
        _ignore_missing(partial(iot.delete_policy, policyName=name))
    LOG.info("checker identity deleted", extra={"thing_name": thing_name, "certificates": len(principals)})


def handle_event(
    event: Mapping[str, Any],
    context: Any,
    iot: Any,
    secretsmanager: Any,
    send: custom_resource.Sender = custom_resource.put_response,
) -> None:
    """The ``Custom::HealthCheckerIdentity`` resource: properties ``ThingName`` and ``CredentialsSecretArn``.

    The physical id is the thing name, so a Delete after a failed Create finds what that Create left behind.
    """
    custom_resource.require_request(event)
    _, partition, _, region, account_id = context.invoked_function_arn.split(":")[:5]

    def properties(request: Mapping[str, Any]) -> tuple[str, str]:
        props = request["ResourceProperties"]
        return str(props["ThingName"]), str(props["CredentialsSecretArn"])

    def create(request: Mapping[str, Any]) -> custom_resource.Outcome:
        thing_name, secret_arn = properties(request)
        data = create_identity(iot, secretsmanager, thing_name, secret_arn, partition, region, account_id)
        return custom_resource.Outcome(thing_name, data)

    def update(request: Mapping[str, Any]) -> custom_resource.Outcome:
        thing_name, secret_arn = properties(request)
        old = request["OldResourceProperties"]
        if thing_name == request["PhysicalResourceId"] and secret_arn == old.get("CredentialsSecretArn"):
            return custom_resource.Outcome(thing_name, describe_identity(iot, thing_name))
        # A new physical id makes CloudFormation delete the old identity once the stack update succeeds.
        return create(request)

    def delete(request: Mapping[str, Any]) -> custom_resource.Outcome:
        delete_identity(iot, request["PhysicalResourceId"])
        return custom_resource.Outcome(request["PhysicalResourceId"])

    custom_resource.run(
        event,
        context,
        create=create,
        update=update,
        delete=delete,
        physical_id_on_failure=lambda request: str(
            (request.get("ResourceProperties") or {}).get("ThingName") or f"{request.get('LogicalResourceId')}-failed"
        ),
        send=send,
    )
