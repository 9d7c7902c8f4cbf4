"""Bad input at every command-line entry point: one line on standard error, the documented exit code, no traceback.

Each row is (entry point, arguments, extra environment, exit code, text the message must contain). New tools add
rows to ENTRY_POINTS and TABLE; the exit codes are the README's table ("Exit codes"). The Lambda handlers' rows
are in tests/test_bad_events.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[1]
WITHOUT_LOCAL_EXTRA = (
    "import sys; sys.modules.update(dict.fromkeys(['moto', 'psutil', 'plotly', 'OpenSSL']));"
    "from iot_dr_cli.main import main; sys.exit(main())"
)
EXIT_NOT_INSTALLED = 3
ENTRY_POINTS = {
    "iot-dr": [sys.executable, "-m", "iot_dr_cli.main"],
    "iot-dr-pubsub.py": [sys.executable, str(REPO / "source/tools/iot-dr-pubsub.py")],
    "build": [sys.executable, "-m", "iot_dr_cli.build"],
    # A product-only install (pip install ., no local extra): the local extra's packages cannot be imported.
    "iot-dr without the local extra": [sys.executable, "-c", WITHOUT_LOCAL_EXTRA],
    "uninstall": [sys.executable, "-m", "iot_dr_cli.uninstall"],
    "launcher": [sys.executable, "-m", "iot_dr_cli.launcher"],
    **{
        tool: [sys.executable, str(REPO / "source/tools" / tool)]
        for tool in (
            "list-thing.py",
            "list-all-things.py",
            "iot-search-devices.py",
            "iot-devices-cmp.py",
            "iot-dr-shadow-cmp.py",
            "delete-things.py",
            "test-dr-deployment.py",
            "bulk-result.py",
        )
    },
    **{
        tool: ["bash", str(REPO / "source/tools" / tool)]
        for tool in ("create-device.sh", "enable-registry-events.sh", "bulk-bench.sh", "iot-dr-run-tests.sh")
    },
}
EXIT_FAILURE, EXIT_USAGE = 1, 2
NOT_UTF8 = os.fsdecode(b"\xff\xfe-region")
MISSING = "/nonexistent/iot-dr/file.pem"
TABLE_NAME = "IoTDRSecondaryDeadLetters"


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """A moto server with an empty dead-letter table, for rows that need a real answer from DynamoDB."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "dynamodb", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x"
    ).create_table(
        TableName=TABLE_NAME,
        AttributeDefinitions=[{"AttributeName": "deadLetterId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "deadLetterId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def certificate_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pem") / "device.cert.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


@pytest.fixture(scope="module")
def private_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "device.private.key"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


PUBSUB = ["--endpoint", "iot.example.com"]
REGIONS = ["--primary-region", "us-east-1", "--secondary-region", "us-west-2"]
BAD_ENDPOINT = {"AWS_ENDPOINT_URL": "notaurl"}
# State directories of iot-dr local, by placeholder: a state.json that is not JSON, and one without its server.
STATE_FILES = {"CORRUPT_STATE": "{not json", "PARTIAL_STATE": '{"endpoint": "http://127.0.0.1:9"}'}
DEPLOYMENT = ["--stack-postfix", "x", "--bucket-suffix", "y"]
# Every operator tool, with arguments that pass its parser: a malformed endpoint URL is a usage error, not a
# botocore traceback.
TOOL_ARGUMENTS = {
    "list-thing.py": ["foo"],
    "list-all-things.py": [],
    "iot-search-devices.py": ["--query-string", "thingName:*"],
    "iot-devices-cmp.py": REGIONS,
    "iot-dr-shadow-cmp.py": REGIONS,
    "delete-things.py": ["--query-string", "thingName:x*", "-f"],
    "test-dr-deployment.py": [*REGIONS, "--endpoint-primary", "a", "--endpoint-secondary", "b"],
    "bulk-result.py": ["x"],
    "uninstall": [*REGIONS, *DEPLOYMENT],
    "launcher": [*REGIONS, *DEPLOYMENT],
}
TABLE = [
    # iot-dr
    ("iot-dr", ["dead-letters", "--region", "mars-1", "--table", TABLE_NAME], {}, EXIT_USAGE, "not an AWS region"),
    ("iot-dr", ["replay", "--region", NOT_UTF8, "--table", TABLE_NAME], {}, EXIT_USAGE, "not an AWS region"),
    ("iot-dr", ["dead-letters", "--region", "us-east-1"], "aws", EXIT_FAILURE, "--stack"),
    ("iot-dr", ["replay", "--region", "us-east-1", "--table", TABLE_NAME], {}, EXIT_FAILURE, "state machine"),
    (
        "iot-dr",
        ["dead-letters", "--region", "us-east-1", "--table", TABLE_NAME],
        {"AWS_ENDPOINT_URL": "notaurl"},
        EXIT_USAGE,
        "notaurl",
    ),
    ("iot-dr", ["dead-letters", "--region", "us-east-1", "--table", "NoSuchTable"], "aws", EXIT_FAILURE, "NoSuchTable"),
    (
        "iot-dr",
        [
            "replay",
            "--region",
            "us-east-1",
            "--table",
            TABLE_NAME,
            "--state-machine-arn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:x",
            "--id",
            "trigger#unknown",
        ],
        "aws",
        EXIT_FAILURE,
        "no parked event with id trigger#unknown",
    ),
    (
        "iot-dr",
        ["dead-letters", "--region", "us-east-1", "--table", TABLE_NAME, "--discard", "workflow#unknown"],
        "aws",
        EXIT_FAILURE,
        "no parked event with id workflow#unknown",
    ),
    ("iot-dr", ["demo", "--things", "0"], {}, EXIT_USAGE, "0 must be between 1 and 10000"),
    ("iot-dr", ["demo", "--things", "999999"], {}, EXIT_USAGE, "999999 must be between 1 and 10000"),
    ("iot-dr", ["demo", "--things", "many"], {}, EXIT_USAGE, "not a whole number"),
    ("iot-dr", ["drill", "--devices", "0"], {}, EXIT_USAGE, "--devices must be between 1 and 10000"),
    ("iot-dr", ["drill", "--clients", "6", "--devices", "5"], {}, EXIT_USAGE, "--clients must be between 1 and 5"),
    ("iot-dr", ["drill", "--outage-seconds", "soon"], {}, EXIT_USAGE, "not a number"),
    ("iot-dr", ["local", "up", "--port", "99999"], {}, EXIT_USAGE, "outside 0-65535"),
    ("iot-dr", ["local", "up", "--mqtt-port", "-1"], {}, EXIT_USAGE, "outside 0-65535"),
    ("iot-dr", ["local", "up", "--primary-region", "mars-1"], {}, EXIT_USAGE, "not an AWS region"),
    ("iot-dr", ["local", "up", "--record-ttl", "0"], {}, EXIT_USAGE, "must be between 1 and"),
    ("iot-dr", ["local", "up", "--health-check-interval", "0"], {}, EXIT_USAGE, "must be between 0.1 and 30"),
    ("iot-dr", ["local", "up", "--health-check-interval", "nan"], {}, EXIT_USAGE, "must be between 0.1 and 30"),
    ("iot-dr", ["local", "up", "--failure-threshold", "11"], {}, EXIT_USAGE, "must be between 1 and 10"),
    ("iot-dr", ["local", "up", "--state-dir", "/proc/x"], {}, EXIT_USAGE, "--state-dir /proc/x: cannot create it"),
    ("iot-dr", ["local", "outage", "us-east-1", "--state-dir", "CORRUPT_STATE"], {}, 1, "state.json is not a state"),
    ("iot-dr", ["local", "restore", "us-east-1", "--state-dir", "PARTIAL_STATE"], {}, 1, "(no 'primary_region')"),
    ("iot-dr", ["sync", "region-to-region", *REGIONS, "--checkpoint", "/proc/nope/x"], {}, 2, "cannot write it"),
    ("iot-dr without the local extra", ["drill", "--aws", *REGIONS], {}, EXIT_NOT_INSTALLED, "pip install"),
    ("iot-dr without the local extra", ["drill", "--restore"], {}, EXIT_NOT_INSTALLED, "needs the local cloud"),
    (
        "iot-dr without the local extra",
        ["dead-letters", "--region", "us-east-1", "--bogus"],
        {},
        EXIT_USAGE,
        "unrecognized arguments",
    ),
    ("iot-dr", ["no-such-command"], {}, EXIT_USAGE, "invalid choice"),
    # iot-dr-pubsub.py
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", MISSING, "--key", MISSING], {}, EXIT_USAGE, "file not found"),
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", "CERT", "--key", "CERT"], {}, EXIT_USAGE, "holds no PEM private key"),
    (
        "iot-dr-pubsub.py",
        [*PUBSUB, "--cert", "CERT", "--key", "KEY", "--dns-server", "dns.example.com:53"],
        {},
        EXIT_USAGE,
        "is not an IP address",
    ),
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", "CERT", "--key", "CERT", "--port", "70000"], {}, EXIT_USAGE, "--port"),
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", "CERT", "--key", "CERT", "--count", "-1"], {}, EXIT_USAGE, "--count"),
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", "CERT", "--key", "CERT", "--topic", ""], {}, EXIT_USAGE, "--topic"),
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", "CERT", "--key", "CERT", "--dr-mode"], {}, EXIT_USAGE, "--use-cname"),
    ("iot-dr-pubsub.py", [*PUBSUB, "--cert", "CERT", "--key", "CERT", "--interval", "x"], {}, EXIT_USAGE, "invalid"),
    *[(tool, arguments, BAD_ENDPOINT, EXIT_USAGE, "notaurl") for tool, arguments in TOOL_ARGUMENTS.items()],
    (
        "iot-dr",
        ["dead-letters", "--region", "us-east-1", "--table", "T"],
        {"AWS_ENDPOINT_URL_DYNAMODB": "x y"},
        2,
        "x y",
    ),
    # deployment: regions checked, files checked, AWS unreachable is a failure
    ("uninstall", [*REGIONS[:3], "us-east-1", *DEPLOYMENT], {}, EXIT_USAGE, "must differ"),
    ("uninstall", ["--primary-region", "mars-1", *REGIONS[2:], *DEPLOYMENT], {}, EXIT_USAGE, "'mars-1' is not"),
    ("uninstall", [*REGIONS, *DEPLOYMENT], {}, EXIT_FAILURE, "Could not connect"),
    ("launcher", ["--primary-region", "mars-1", *REGIONS[2:], *DEPLOYMENT], {}, EXIT_USAGE, "'mars-1' is not"),
    ("launcher", [*REGIONS, *DEPLOYMENT, "--artifacts", "/nonexistent"], {}, EXIT_USAGE, "launcher: error: argument"),
    # operator tools: regions, output files and numbers checked before any work
    ("iot-devices-cmp.py", [*REGIONS, "--json", "/proc/nope/x.json"], {}, EXIT_USAGE, "/proc/nope does not exist"),
    ("iot-devices-cmp.py", [*REGIONS, "--wait", "-1"], {}, EXIT_USAGE, "must be 0 or more seconds"),
    ("iot-dr-shadow-cmp.py", [*REGIONS[:3], "us-east-1"], {}, EXIT_USAGE, "must differ"),
    ("iot-dr-shadow-cmp.py", ["--primary-region", "mars-1", *REGIONS[2:]], {}, EXIT_USAGE, "'mars-1' is not"),
    ("list-thing.py", ["foo", "--region", "mars-1"], {}, EXIT_USAGE, "'mars-1' is not"),
    ("delete-things.py", ["--query-string", "x", "--region", "mars-1"], {}, EXIT_USAGE, "'mars-1' is not"),
    # shell tools: the AWS CLI's own exit codes (255) are mapped to the documented ones
    ("create-device.sh", ["t1"], {"AWS_DEFAULT_REGION": "mars-1"}, EXIT_USAGE, "mars-1 is not an AWS region"),
    ("create-device.sh", ["t1"], {}, EXIT_FAILURE, "an AWS CLI call failed"),
    ("enable-registry-events.sh", ["us-east-1"], {}, EXIT_FAILURE, "an AWS CLI call failed"),
    ("enable-registry-events.sh", ["us-east-1", "mars-1"], {}, EXIT_USAGE, "mars-1 is not an AWS region"),
    # the artifact builder
    ("build", ["OUT", "--version", "2.0"], {}, EXIT_FAILURE, "must look like v2.0.0"),
    ("build", ["OUT", "--vendor", "nothing"], {}, EXIT_USAGE, "FUNCTION=DIR"),
]


def _row_id(row: tuple[object, ...]) -> str:
    return f"{row[0]} {' '.join(str(a) for a in row[1])[:60]}"


@pytest.mark.parametrize(("entry", "args", "env", "code", "message"), TABLE, ids=[_row_id(r) for r in TABLE])
def test_bad_input_gets_one_line_on_stderr_and_the_documented_exit_code(
    entry: str,
    args: list[str],
    env: dict[str, str] | str,
    code: int,
    message: str,
    tmp_path: Path,
    certificate_only: Path,
    private_key: Path,
    request: pytest.FixtureRequest,
) -> None:
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{REPO / 'source/layer'}:{REPO / 'source/tools'}:{REPO / 'source/localcloud'}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Nothing here may reach AWS: calls go to a moto server or to a closed loopback port.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }
    if env == "aws":
        environment["AWS_ENDPOINT_URL"] = request.getfixturevalue("aws_endpoint")
    else:
        environment.update(env)  # type: ignore[arg-type]
    placeholders = {"CERT": str(certificate_only), "KEY": str(private_key), "OUT": str(tmp_path / "out")}
    for name, text in STATE_FILES.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(text)
        placeholders[name] = str(tmp_path / name)
    argv = [placeholders.get(a, a) for a in args]

    finished = subprocess.run(
        [*ENTRY_POINTS[entry], *argv], capture_output=True, env=environment, cwd=tmp_path, timeout=60, check=False
    )
    stderr = finished.stderr.decode(errors="replace")

    assert finished.returncode == code, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if ": error:" in line]
    assert len(error_lines) == 1, stderr
    assert message in error_lines[0]


@pytest.mark.parametrize(
    "tool", ["bulk-bench.sh", "iot-dr-run-tests.sh", "create-device.sh", "enable-registry-events.sh"]
)
def test_help_prints_the_usage_and_exits_0(tool: str) -> None:
    finished = subprocess.run(
        [*ENTRY_POINTS[tool], "--help"], capture_output=True, env={"PATH": os.environ["PATH"]}, timeout=60, check=False
    )
    assert (finished.returncode, finished.stderr) == (0, b"")
    assert finished.stdout.startswith(f"usage: {tool}".encode())
