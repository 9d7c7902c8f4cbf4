"""The health checker's own IoT identity: a thing, an active certificate and a policy limited to its topics.

The health-checker stack creates and deletes it with native CloudFormation resources
(``iot_dr.health.checker_credentials`` keeps its key). Here: the policy it gets (the local cloud's checker identity uses
it too), and the removal of the copy replication makes of the primary's identity in the secondary, which no stack owns
(``iot_dr.deploy.uninstall``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from iot_dr.core.aws import error_code

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient

LOG = logging.getLogger(__name__)

_DETACH_SETTLE_ATTEMPTS = 10


def policy_name(thing_name: str) -> str:
    """The name of the checker thing's IoT policy, ``<thing>-policy``."""
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


def _delete_certificate(iot: IoTClient, certificate_arn: str, certificate_id: str) -> None:
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


def delete_identity(iot: IoTClient, thing_name: str) -> None:
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
