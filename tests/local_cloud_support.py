"""The two-region local cloud the integration tests run against, started once per test module."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from iot_dr_local.cloud import LocalCloud

PRIMARY, SECONDARY = "us-east-1", "us-west-2"

# Short workflow retries keep tests quick while still exercising backoff; events whose dependency lands within
# about 20 s are applied, anything else is parked.
FAST_RETRIES = {
    "RetryIntervalSeconds": "1",
    "RetryBackoffRate": "1.5",
    "RetryMaxAttempts": "6",
    "RetryMaxDelaySeconds": "5",
}


# Quick workflow retries, and a stream mapping that gives up after one retry: for tests of what ends parked.
GIVE_UP_QUICKLY = {
    "RetryIntervalSeconds": "1",
    "RetryBackoffRate": "1",
    "RetryMaxAttempts": "2",
    "RetryMaxDelaySeconds": "1",
    "StreamMaximumRetryAttempts": "1",
}


@contextmanager
def running_cloud(deploy_parameters: Mapping[str, str] | None = None) -> Iterator[LocalCloud]:
    """A started local cloud (PRIMARY, SECONDARY), stopped on exit.

    With ``deploy_parameters`` the account is prepared and the solution deployed from the templates with those
    secondary-stack parameters; without, nothing is deployed.
    """
    local = LocalCloud(PRIMARY, SECONDARY)
    local.start()
    try:
        if deploy_parameters is not None:
            local.prepare_account()
            local.deploy(**deploy_parameters)
        yield local
    finally:
        local.stop()
