"""Fixtures for the local cloud: one moto server per session, clean moto state and workers per test."""

from __future__ import annotations

import io
import json
import logging
import textwrap
import urllib.request
import zipfile
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from iot_dr_local import cfn_extensions, lambda_runtime, locking, moto_speedups
from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.global_tables import GlobalTableReplicator

PRIMARY = "us-east-1"
LAMBDA_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _post(url: str, body: dict[str, object] | None = None) -> None:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1 that every boto3 client in this process talks to."""
    locking.install()
    moto_speedups.install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{port}"
    saved_config = {service: default_user_config.get(service, {}) for service in ("iot", "stepfunctions")}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        env.setenv("AWS_DEFAULT_REGION", PRIMARY)
        # moto's own Step Functions clients call http://localhost:$MOTO_PORT.
        env.setenv("MOTO_PORT", str(port))
        _post(f"{endpoint}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        # The config endpoint ignores "iot"; the server runs in this process, so set it directly.
        default_user_config["iot"] = {"use_valid_cert": True}
        try:
            yield endpoint
        finally:
            default_user_config.update(saved_config)  # type: ignore[typeddict-item]
            server.stop()


@pytest.fixture
def aws(moto_server: str) -> str:
    """Empty moto state for this test; returns the endpoint URL."""
    # A local cloud stopped by an earlier test in this process takes its patches with it; these stay on.
    locking.install()
    moto_speedups.install()
    _post(f"{moto_server}/moto-api/reset")
    return moto_server


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    workers = Dispatcher()
    yield workers
    workers.shutdown()


@pytest.fixture
def lambdas(aws: str, dispatcher: Dispatcher) -> Iterator[lambda_runtime.LambdaRuntime]:
    """Lambda functions run their handler code in worker processes of their own."""
    runtime = lambda_runtime.install(aws, dispatcher)
    yield runtime
    lambda_runtime.stop()


@pytest.fixture
def cloudformation_extensions(aws: str, dispatcher: Dispatcher) -> Iterator[GlobalTableReplicator]:
    """The local cloud's CloudFormation resource types and fixes installed; yields the global tables' replicator."""
    global_tables = GlobalTableReplicator(dispatcher)
    global_tables.install()
    cfn_extensions.install(global_tables)
    yield global_tables
    cfn_extensions.uninstall()
    global_tables.uninstall()


def _package(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, textwrap.dedent(source))
    return buffer.getvalue()


@pytest.fixture
def package() -> Callable[[dict[str, str]], bytes]:
    """Builds a deployment package (zip) from ``{file name: Python source}``."""
    return _package


@pytest.fixture
def make_function(lambdas: lambda_runtime.LambdaRuntime) -> Callable[..., str]:
    """Create a Python function from handler source; returns its ARN."""

    def create(name: str, source: str, region: str = PRIMARY, handler: str = "index.handler", **options: object) -> str:
        iam = boto3.client("iam", region_name=region)
        try:
            role_arn = iam.get_role(RoleName="local-lambda")["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role_arn = iam.create_role(
                RoleName="local-lambda", AssumeRolePolicyDocument=json.dumps(LAMBDA_ROLE_POLICY)
            )["Role"]["Arn"]
        module = handler.rpartition(".")[0].replace(".", "/") + ".py"
        response = boto3.client("lambda", region_name=region).create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn,
            Handler=handler,
            Code={"ZipFile": _package({module: source})},
            **options,
        )
        return str(response["FunctionArn"])

    return create
