"""A device identity made through the IoT API with the calls the health-checker stack's resources make.

On AWS, CloudFormation creates the checker's thing, policy, certificate (from the stack's CSR) and attachments with
these API calls, which CloudTrail records like anyone else's; the local cloud's CloudFormation writes to its backend
directly, so the tests make the calls themselves to give the capture the same events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from iot_dr.health import checker_credentials, checker_identity


@dataclass(frozen=True)
class Identity:
    thing_name: str
    policy_name: str
    certificate_id: str
    certificate_arn: str


def create_identity(iot: Any, thing_name: str) -> Identity:
    """A thing, its policy, an ACTIVE certificate made from a CSR with subject CN=``thing_name``, and both
    attachments, in the order the health-checker stack creates them."""
    _, csr_pem = checker_credentials.new_key_and_csr(thing_name)
    iot.create_thing(thingName=thing_name)
    policy_name = checker_identity.policy_name(thing_name)
    certificate = iot.create_certificate_from_csr(certificateSigningRequest=csr_pem, setAsActive=True)
    arn = certificate["certificateArn"]
    _, partition, _, region, account_id, _ = arn.split(":", 5)
    document = checker_identity.policy_document(partition, region, account_id, thing_name)
    iot.create_policy(policyName=policy_name, policyDocument=json.dumps(document))
    iot.attach_policy(policyName=policy_name, target=arn)
    iot.attach_thing_principal(thingName=thing_name, principal=arn)
    return Identity(thing_name, policy_name, certificate["certificateId"], arn)


def parts_present(iot: Any, identity: Identity) -> list[str]:
    """Which of the identity's thing, policy and certificate exist in ``iot``'s region."""
    found = []
    for part, call in (
        ("thing", lambda: iot.describe_thing(thingName=identity.thing_name)),
        ("policy", lambda: iot.get_policy(policyName=identity.policy_name)),
        ("certificate", lambda: iot.describe_certificate(certificateId=identity.certificate_id)),
    ):
        try:
            call()
        except iot.exceptions.ResourceNotFoundException:
            continue
        found.append(part)
    return found
