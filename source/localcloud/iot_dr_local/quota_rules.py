"""AWS's default request-rate quotas for the IoT operations the solution and its tools call.

Values are transactions per second per account and region, from the AWS IoT Core endpoints and quotas page
(https://docs.aws.amazon.com/general/latest/gr/iot-core.html#limits_iot, "API throttling limits") and its Service
Quotas codes; docs/local-cloud.md ("Quota emulation") lists each with its source. Quotas drift and AWS raises them on
request: these are the defaults, to test the replication path at the ceiling a new account has. This module holds
data only (no moto), so the ``iot-dr`` command can list the profiles without loading the local cloud.
"""

from __future__ import annotations

from collections.abc import Mapping

# (service, operation) -> requests per second. "iot" is the control plane, "iot-data" the Device Shadow REST API.
Rates = Mapping[tuple[str, str], float]

AWS_DEFAULT_RATES: Rates = {
    ("iot", "AddThingToThingGroup"): 100,
    ("iot", "AttachPolicy"): 15,
    ("iot", "AttachThingPrincipal"): 100,
    ("iot", "CreatePolicy"): 10,
    ("iot", "CreatePolicyVersion"): 10,
    ("iot", "CreateThing"): 100,
    ("iot", "CreateThingGroup"): 25,
    ("iot", "CreateThingType"): 15,
    ("iot", "DeleteCertificate"): 10,
    ("iot", "DeleteThing"): 100,
    ("iot", "DeleteThingGroup"): 25,
    ("iot", "DeprecateThingType"): 15,
    ("iot", "DescribeCertificate"): 10,
    ("iot", "DescribeThing"): 350,
    ("iot", "DescribeThingGroup"): 100,
    ("iot", "DescribeThingType"): 100,
    ("iot", "DetachPolicy"): 15,
    ("iot", "DetachThingPrincipal"): 100,
    ("iot", "GetPolicy"): 10,
    ("iot", "GetPolicyVersion"): 15,
    ("iot", "ListAttachedPolicies"): 15,
    ("iot", "ListPolicyVersions"): 10,
    ("iot", "ListPrincipalThings"): 10,
    ("iot", "ListThingGroupsForThing"): 100,
    ("iot", "ListThingPrincipals"): 10,
    ("iot", "ListThingPrincipalsV2"): 10,
    ("iot", "ListThings"): 10,
    ("iot", "ListThingsInThingGroup"): 25,
    ("iot", "RegisterCertificate"): 10,
    ("iot", "RegisterCertificateWithoutCA"): 10,
    ("iot", "RemoveThingFromThingGroup"): 100,
    ("iot", "SearchIndex"): 15,
    ("iot", "UpdateCertificate"): 10,
    ("iot", "UpdateThing"): 100,
    ("iot", "UpdateThingGroup"): 25,
    ("iot", "UpdateThingGroupsForThing"): 100,
    ("iot-data", "DeleteThingShadow"): 400,
    ("iot-data", "GetThingShadow"): 400,
    ("iot-data", "ListNamedShadowsForThing"): 400,
    ("iot-data", "UpdateThingShadow"): 400,
}

QUOTA_PROFILES: Mapping[str, Rates] = {"aws-default": AWS_DEFAULT_RATES}
