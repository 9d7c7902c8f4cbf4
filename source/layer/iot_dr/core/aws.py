"""The one place that creates AWS clients.

Every client uses botocore's standard retry mode. Endpoints come from botocore's own resolution, which
honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``; only the IoT data plane needs an
account-specific endpoint, and it is looked up with ``describe_endpoint`` only when no override is set.

Some operations put a prefix before the endpoint's host (Step Functions' StartSyncExecution goes to
``sync-states.<region>.amazonaws.com``). An overridden endpoint is used as given: botocore's
``inject_host_prefix=False`` is meant for "clients providing custom endpoints that should not have their host
prefix modified" (https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html), and a prefix
before an address such as ``127.0.0.1`` names no host. ``AWS_DISABLE_HOST_PREFIX_INJECTION``, when set, decides.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

if TYPE_CHECKING:
    # Development-only stubs (types-boto3); at run time the annotations stay strings.
    from types_boto3_cloudformation import CloudFormationClient
    from types_boto3_codebuild import CodeBuildClient
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_iot import IoTClient
    from types_boto3_iot_data import IoTDataPlaneClient
    from types_boto3_s3 import S3Client
    from types_boto3_secretsmanager import SecretsManagerClient

# Fleet tools call one client from up to 50 threads (the syncs' and the drift check's MAX_WORKERS). botocore keeps
# 10 connections per client by default and closes the others after each call, so each of those calls opened a new
# connection (a TLS handshake on AWS): the pool holds one per thread.
MAX_POOL_CONNECTIONS = 50
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=MAX_POOL_CONNECTIONS,
)
_AS_GIVEN = Config(inject_host_prefix=False)

_cache: dict[tuple[str, str, str | None, str | None, int], Any] = {}
_cache_lock = threading.Lock()


def _override_for(service_env_name: str) -> str | None:
    return os.environ.get(f"AWS_ENDPOINT_URL_{service_env_name}") or os.environ.get("AWS_ENDPOINT_URL")


@overload
def client(service: Literal["cloudformation"], region: str, config: Config | None = None) -> CloudFormationClient: ...
@overload
def client(service: Literal["codebuild"], region: str, config: Config | None = None) -> CodeBuildClient: ...
@overload
def client(service: Literal["dynamodb"], region: str, config: Config | None = None) -> DynamoDBClient: ...
@overload
def client(service: Literal["iot"], region: str, config: Config | None = None) -> IoTClient: ...
@overload
def client(service: Literal["iot-data"], region: str, config: Config | None = None) -> IoTDataPlaneClient: ...
@overload
def client(service: Literal["s3"], region: str, config: Config | None = None) -> S3Client: ...
@overload
def client(service: Literal["secretsmanager"], region: str, config: Config | None = None) -> SecretsManagerClient: ...
@overload
def client(service: str, region: str, config: Config | None = None) -> Any: ...


def client(service: str, region: str, config: Config | None = None) -> Any:
    """A cached client for ``service`` in ``region``; ``config`` (a module-level constant) overrides timeouts and
    retries for callers with a deadline, on top of the standard retry mode.

    Cached per endpoint override and access key, so a changed override or identity gets a new client.
    """
    env_name = service.upper().replace("-", "_")
    key = (service, region, _override_for(env_name), os.environ.get("AWS_ACCESS_KEY_ID"), id(config))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            if service == "iot-data":
                cached = _iot_data_client(region)
            else:
                merged = RETRY_CONFIG.merge(config) if config else RETRY_CONFIG
                if _override_for(env_name) and "AWS_DISABLE_HOST_PREFIX_INJECTION" not in os.environ:
                    merged = merged.merge(_AS_GIVEN)
                # The service is only known at run time here; the overloads above give callers the typed client.
                session: Any = boto3.session.Session()
                cached = session.client(service, region_name=region, config=merged)
            _cache[key] = cached
        return cached


def _iot_data_client(region: str) -> IoTDataPlaneClient:
    session = boto3.session.Session()
    if _override_for("IOT_DATA_PLANE"):
        return session.client("iot-data", region_name=region, config=RETRY_CONFIG)
    iot = session.client("iot", region_name=region, config=RETRY_CONFIG)
    address = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    return session.client("iot-data", region_name=region, endpoint_url=f"https://{address}", config=RETRY_CONFIG)


def clear_client_cache() -> None:
    """Forget cached clients; needed when the endpoint behind the same settings changes (tests, local cloud)."""
    with _cache_lock:
        _cache.clear()


def error_code(err: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# Errors that botocore's standard mode retries: throttling, transient service errors and 5xx statuses
# (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html). When they outlast the SDK's own
# attempts, the caller should try again later rather than give up.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is an AWS error worth retrying later (see ``TRANSIENT_ERROR_CODES``), a 5xx response, or a
    connection failure."""
    if isinstance(err, BotoCoreError):
        return True
    status = int((getattr(err, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return error_code(err) in TRANSIENT_ERROR_CODES or status >= 500
