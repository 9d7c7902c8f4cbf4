"""Policy documents are rewritten for the secondary by parsing ARNs, never by replacing text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_dr.core.arns import Arn, rewrite_policy_document, rewrite_region


def test_arn_round_trips_and_exposes_resource_parts() -> None:
    arn = Arn.parse("arn:aws:iot:us-east-1:123456789012:thinggroup/fleet/a")
    assert (arn.partition, arn.service, arn.region, arn.account) == ("aws", "iot", "us-east-1", "123456789012")
    assert (arn.resource_type, arn.resource_id) == ("thinggroup", "fleet/a")
    assert str(arn) == "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet/a"


@pytest.mark.parametrize("text", ["", "arn:aws", "not:an:arn:at:all:x", "us-east-1", "arn::iot:r:a:x"])
def test_non_arns_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        Arn.parse(text)


def test_only_the_region_field_of_primary_arns_changes() -> None:
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish"],
                    "Resource": [
                        "arn:aws:iot:us-east-1:123456789012:topic/us-east-1/telemetry",
                        "arn:aws:iot:eu-west-1:123456789012:topic/other-region",
                        "arn:aws:iot:*:123456789012:topic/any",
                    ],
                    "Condition": {"StringEquals": {"iot:ClientId": "device-us-east-1"}},
                },
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/c"},
            ],
        }
    )
    rewritten = json.loads(rewrite_policy_document(document, "us-east-1", "us-west-2"))
    first, second = rewritten["Statement"]
    assert first["Resource"] == [
        "arn:aws:iot:us-west-2:123456789012:topic/us-east-1/telemetry",
        "arn:aws:iot:eu-west-1:123456789012:topic/other-region",
        "arn:aws:iot:*:123456789012:topic/any",
    ]
    assert first["Condition"] == {"StringEquals": {"iot:ClientId": "device-us-east-1"}}
    assert second["Resource"] == "arn:aws:iot:us-west-2:123456789012:client/c"


@given(st.text(alphabet=st.characters(blacklist_characters=":"), min_size=1, max_size=30))
def test_resource_names_survive_rewrite_unchanged(resource: str) -> None:
    arn = f"arn:aws:iot:us-east-1:123456789012:topic/{resource}"
    assert Arn.parse(rewrite_region(arn, "us-east-1", "us-west-2")).resource == f"topic/{resource}"
