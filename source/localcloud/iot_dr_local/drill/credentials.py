"""Credentials of the simulated devices of a drill against a deployment: an AWS IoT certificate per client, attached
to its test thing, with one policy per drill run that lets a client do only what ``iot-dr-pubsub.py`` does.

The private keys exist only in the drill's runtime directory (mode 0700, each key 0600) and are removed with it;
nothing of them goes to the report or the output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from iot_dr_local.failover import DeviceCertificate

TOPIC_ROOT = "dt/drill"


def policy_name(run_prefix: str) -> str:
    """The run's policy: named as its things, so that it is as easy to find and as unambiguous."""
    return run_prefix.rstrip("-")


def policy_document(partition: str, account_id: str) -> str:
    """Connect only with the client ID of the thing the certificate is attached to (the policy is attached only to
    certificates of the run's things), publish, subscribe and receive on ``dt/drill/<that thing>`` only
    (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html). Any region: the replicated
    policy is the same document, and the devices use it in both."""
    resource = f"arn:{partition}:iot:*:{account_id}"
    thing = "${iot:Connection.Thing.ThingName}"
    own_topic = f"{TOPIC_ROOT}/{thing}"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{resource}:client/{thing}"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{resource}:topic/{own_topic}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{resource}:topicfilter/{own_topic}"},
        ],
    }
    return json.dumps(document)


def issue(iot: Any, thing: str, policy: str, directory: Path) -> DeviceCertificate:
    """An ACTIVE certificate from AWS IoT for ``thing``, its policy ``policy`` attached, the certificate attached to
    the thing; the PEM files written as ``directory/<thing>.cert.pem`` and ``.key.pem`` (0600)."""
    created = iot.create_keys_and_certificate(setAsActive=True)
    arn = created["certificateArn"]
    iot.attach_policy(policyName=policy, target=arn)
    iot.attach_thing_principal(thingName=thing, principal=arn)
    cert_path, key_path = directory / f"{thing}.cert.pem", directory / f"{thing}.key.pem"
    _write_private(cert_path, created["certificatePem"])
    _write_private(key_path, created["keyPair"]["PrivateKey"])
    return DeviceCertificate(thing, cert_path, key_path, created["certificateId"])


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
