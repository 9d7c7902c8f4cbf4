"""The health checker's own IoT identity: a thing, an active certificate and a policy limited to its topics.

The health-checker stack creates and deletes it with native CloudFormation resources
(``iot_dr.health.checker_credentials`` keeps its key). Here: the policy it gets (the local cloud's checker identity uses
it too), and how the rest of the solution recognises it so that it never leaves its region.

Each region's checker proves that region's own IoT endpoint works; a copy in the other region would be an identity no
stack owns, and removing it would need rights over every certificate there. So the capture in the primary (topic
rules, CloudTrail capture, reconciliation) and the region syncs skip it. It is recognised by names its stack chooses:

- the thing is ``iot-dr-r53-checker-<id>`` (``THING_NAME_PREFIX``, reserved for the solution: the deployment role's
  rights on things and policies are limited to it);
- its policy is ``<thing>-policy``;
- its certificate, made by IoT from the stack's CSR, has the thing's name as subject common name (the CSR's subject;
  ``checker_credentials.new_key_and_csr``), which is readable from the certificate alone, before any attachment.
  Assumption to confirm on AWS: IoT keeps the CSR's subject in the certificate it issues, as the local cloud does
  (https://docs.aws.amazon.com/iot/latest/apireference/API_CreateCertificateFromCsr.html says only that the
  certificate is created "using the specified certificate signing request").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from iot_dr.core.device_policy import device_policy
from iot_dr.core.event_types import EventType
from iot_dr.core.x509_subject import subject_common_name

THING_NAME_PREFIX = "iot-dr-r53-checker-"
POLICY_SUFFIX = "-policy"


def is_checker_thing(thing_name: str) -> bool:
    """True for a health checker's thing name (the one predicate behind every skip below)."""
    return thing_name.startswith(THING_NAME_PREFIX)


def without_checker_things(thing_names: Iterable[str]) -> Iterator[str]:
    """``thing_names`` less the health checkers' things, lazily (a fleet is walked page by page)."""
    return (name for name in thing_names if not is_checker_thing(name))


def is_checker_policy(policy_name: str) -> bool:
    """True for a health checker's policy name, ``<checker thing>-policy``."""
    return policy_name.endswith(POLICY_SUFFIX) and is_checker_thing(policy_name)


def is_checker_certificate(certificate_pem: str) -> bool:
    """True when the certificate's subject CN is a checker thing's name; False for any other or unreadable PEM."""
    try:
        common_name = subject_common_name(certificate_pem)
    except ValueError:
        return False
    return common_name is not None and is_checker_thing(common_name)


def is_checker_snapshot(body: dict[str, Any]) -> bool:
    """True for a snapshot item body (``iot_dr.primary.snapshots``) of a health checker's thing, its attachments,
    policy or certificate. A deleted certificate (``exists: False``) carries no PEM and is not recognised: its
    deletion in the secondary finds nothing to delete."""
    event_type = body.get("eventType")
    if event_type in (EventType.THING, EventType.THING_PRINCIPALS):
        return is_checker_thing(str(body.get("thingName", "")))
    if event_type == EventType.POLICY:
        return is_checker_policy(str(body.get("policyName", "")))
    if event_type == EventType.CERTIFICATE:
        return bool(body.get("certificatePem")) and is_checker_certificate(str(body["certificatePem"]))
    if event_type == EventType.POLICY_TARGETS:
        return any(is_checker_policy(str(name)) for name in body.get("policies", []))
    return False


def policy_name(thing_name: str) -> str:
    """The name of the checker thing's IoT policy, ``<thing>-policy``."""
    return f"{thing_name}-policy"


def policy_document(partition: str, region: str, account_id: str, thing_name: str) -> dict[str, Any]:
    """Connect only with client ids ``<thing>-*``; publish, subscribe and receive only under its own topic."""
    return device_policy(
        f"arn:{partition}:iot:{region}:{account_id}", f"{thing_name}-*", [f"iot-dr/health-check/{thing_name}/*"]
    )
