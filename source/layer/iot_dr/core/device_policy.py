"""The least-privilege IoT policy documents the solution creates for devices it owns (JITR devices, the health
checker, the demo fleet and the test device of ``iot-dr-run-tests.sh``).

Each lets one client id (or client-id pattern) connect, and publish, receive and subscribe only on its own topics.
Actions and resource forms: https://docs.aws.amazon.com/iot/latest/developerguide/iot-action-resources.html
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def _resources(arn_prefix: str, kind: str, names: Sequence[str]) -> str | list[str]:
    resources = [f"{arn_prefix}:{kind}/{name}" for name in names]
    return resources[0] if len(resources) == 1 else resources


def device_policy(arn_prefix: str, client_id: str, topics: Sequence[str]) -> dict[str, Any]:
    """The policy document: ``iot:Connect`` as ``client_id``; ``iot:Publish`` and ``iot:Receive`` on the topic names
    ``topics``; ``iot:Subscribe`` on the same strings as topic filters. ``arn_prefix`` is
    ``arn:<partition>:iot:<region>:<account>`` (``*`` for any region or account); names may end in ``*`` and use
    policy variables such as ``${iot:Connection.Thing.ThingName}``. One resource is a string, several a list."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn_prefix}:client/{client_id}"},
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": _resources(arn_prefix, "topic", topics),
            },
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": _resources(arn_prefix, "topicfilter", topics)},
        ],
    }


def device_policy_json(arn_prefix: str, client_id: str, topics: Sequence[str]) -> str:
    """``device_policy`` as the JSON text ``CreatePolicy`` takes."""
    return json.dumps(device_policy(arn_prefix, client_id, topics))
