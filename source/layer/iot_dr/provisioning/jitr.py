"""Just-in-time registration: provisions a device the first time its CA-signed certificate connects.

IoT registers such a certificate as PENDING_ACTIVATION and publishes
``$aws/events/certificates/registered/<caCertificateId>``; the JITR rule hands the event to this code, which
creates a thing named after the certificate's CN, ensures the JITR policy, activates the certificate and
attaches both. Every step is idempotent, so IoT's retries of the asynchronous invocation are safe.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from iot_dr.core.aws import error_code
from iot_dr.core.device_policy import device_policy_json
from iot_dr.core.errors import MalformedEvent
from iot_dr.core.x509_subject import subject_common_name
from iot_dr.secondary.replicate.context import describe_or_none

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient

LOG = logging.getLogger(__name__)


def jitr_policy_document(partition: str) -> str:
    """Devices may connect as their thing name and use their own topics and shadows only."""
    thing = "${iot:Connection.Thing.ThingName}"
    topics = [f"dt/{thing}/*", f"cmd/{thing}/*", f"$aws/things/{thing}/shadow/*"]
    return device_policy_json(f"arn:{partition}:iot:*:*", thing, topics)


def provision(iot: IoTClient, policy_name: str, event: dict[str, Any], partition: str = "aws") -> dict[str, str]:
    """Just-in-time registration of the certificate in a registration event
    (https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html): a thing named after the
    subject's CN (or the certificate id), the policy (created if missing), the certificate activated and attached.
    Returns ``{"thingName", "certificateId"}``; raises ``MalformedEvent`` without a ``certificateId``."""
    certificate_id = event.get("certificateId") if isinstance(event, dict) else None
    if not isinstance(certificate_id, str) or not certificate_id:
        raise MalformedEvent("certificate registration event has no certificateId")
    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    thing_name = subject_common_name(description["certificatePem"]) or certificate_id
    if describe_or_none(iot.describe_thing, thingName=thing_name) is None:
        iot.create_thing(thingName=thing_name)
    if describe_or_none(iot.get_policy, policyName=policy_name) is None:
        try:
            iot.create_policy(policyName=policy_name, policyDocument=jitr_policy_document(partition))
        except Exception as err:
            if error_code(err) != "ResourceAlreadyExistsException":
                raise
    if description["status"] != "ACTIVE":
        iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    iot.attach_policy(policyName=policy_name, target=description["certificateArn"])
    iot.attach_thing_principal(thingName=thing_name, principal=description["certificateArn"])
    LOG.info("device provisioned", extra={"thingName": thing_name, "certificateId": certificate_id})
    return {"thingName": thing_name, "certificateId": certificate_id}
