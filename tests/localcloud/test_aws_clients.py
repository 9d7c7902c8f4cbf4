"""Every AWS client honours endpoint overrides and uses standard retries (iot_dr.core.aws)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from iot_dr.core import aws as aws_clients


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IOT", "AWS_ENDPOINT_URL_IOT_DATA_PLANE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws_clients.clear_client_cache()
    yield monkeypatch
    aws_clients.clear_client_cache()


def test_general_override_is_used_for_the_iot_data_plane_without_describe_endpoint(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on port 9: a describe_endpoint call would fail the test.
    clean_environment.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    client = aws_clients.client("iot-data", "eu-west-1")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.config.retries["mode"] == "standard"


def test_service_specific_override_wins_for_its_service_only(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("AWS_ENDPOINT_URL_IOT_DATA_PLANE", "http://127.0.0.1:9")
    assert aws_clients.client("iot-data", "eu-west-1").meta.endpoint_url == "http://127.0.0.1:9"
    assert aws_clients.client("iot", "eu-west-1").meta.endpoint_url == "https://iot.eu-west-1.amazonaws.com"


def test_without_override_the_data_plane_uses_the_accounts_ats_endpoint(
    clean_environment: pytest.MonkeyPatch, aws: str
) -> None:
    # Only the IoT control plane is overridden (to the local cloud), so describe_endpoint is answered there and
    # names the account-specific endpoint (moto makes up a random prefix, as AWS gives each account its own).
    clean_environment.setenv("AWS_ENDPOINT_URL_IOT", aws)
    endpoint = aws_clients.client("iot-data", "eu-west-1").meta.endpoint_url
    assert re.fullmatch(r"https://[a-z0-9]+-ats\.iot\.eu-west-1\.amazonaws\.com", endpoint), endpoint


def test_clients_are_cached_per_endpoint_and_identity(clean_environment: pytest.MonkeyPatch) -> None:
    first = aws_clients.client("sqs", "eu-west-1")
    assert aws_clients.client("sqs", "eu-west-1") is first
    clean_environment.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert aws_clients.client("sqs", "eu-west-1") is not first
    clean_environment.setenv("AWS_ACCESS_KEY_ID", "other")
    assert aws_clients.client("sqs", "eu-west-1").meta.endpoint_url == "http://127.0.0.1:9"
