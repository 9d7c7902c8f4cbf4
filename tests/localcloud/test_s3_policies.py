"""Bucket policies in the local cloud apply a statement only when its conditions hold."""

from __future__ import annotations

import json

import pytest
from moto.iam.access_control import PermissionResult

from iot_dr_local.s3_policies import bucket_permission

TLS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


def test_tls_only_policy_lets_local_requests_through() -> None:
    assert bucket_permission(json.dumps(TLS_ONLY), "s3:PutObject", "arn:aws:s3:::b/key") == PermissionResult.NEUTRAL


def test_unconditional_deny_still_denies() -> None:
    policy = {"Statement": [{**TLS_ONLY["Statement"][0], "Condition": {}}]}
    assert bucket_permission(json.dumps(policy), "s3:GetObject", "arn:aws:s3:::b/key") == PermissionResult.DENIED


def test_deny_whose_condition_holds_denies() -> None:
    policy = {"Statement": [{**TLS_ONLY["Statement"][0], "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}
    assert bucket_permission(json.dumps(policy), "s3:GetObject", "arn:aws:s3:::b/key") == PermissionResult.DENIED


def test_unsupported_condition_operators_fail_loudly() -> None:
    policy = {"Statement": [{**TLS_ONLY["Statement"][0], "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}}}]}
    with pytest.raises(ValueError, match="IpAddress"):
        bucket_permission(json.dumps(policy), "s3:GetObject", "arn:aws:s3:::b/key")
