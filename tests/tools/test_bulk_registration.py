"""bulk-bench.sh and bulk-result.py on the local cloud's bulk registration emulation.

Devices registered in bulk get certificates for their own keys, reach the secondary whole, and failures of the task
are reported line by line with a non-zero exit.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from local_cloud_support import PRIMARY
from tool_support import run_tool

from iot_dr_local import bulk_registration
from iot_dr_local.cloud import LocalCloud


@pytest.fixture
def bulk_env(tool_env: dict[str, str]) -> dict[str, str]:
    return {**tool_env, "PYTHON": sys.executable}


def only_directory(parent: Path) -> Path:
    [directory] = [p for p in parent.iterdir() if p.is_dir()]
    return directory


def test_devices_registered_in_bulk_use_their_own_keys_and_are_replicated(
    cloud: LocalCloud, bulk_env: dict[str, str], tmp_path: Path, primary: Any, secondary: Any
) -> None:
    result = run_tool("bulk-bench.sh", "dr-bulk-", "12", env=bulk_env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "key generation: 12 keys and CSRs in" in result.stdout
    assert "task status: Completed registered: 12 errors: 0" in result.stdout
    directory = only_directory(tmp_path)
    assert directory.name.startswith("dr-bulk--")
    assert len((directory / "results.json").read_text().splitlines()) == 12
    for index in (1, 12):
        key = serialization.load_pem_private_key((directory / f"dr-bulk-{index}.key").read_bytes(), None)
        certificate = x509.load_pem_x509_certificate((directory / f"dr-bulk-{index}.crt").read_bytes())
        assert certificate.public_key() == key.public_key()
        assert (directory / f"dr-bulk-{index}.key").stat().st_mode & 0o077 == 0
        thing = primary.describe_thing(thingName=f"dr-bulk-{index}")
        assert thing["attributes"] == {"serialNumber": str(index)}
    compared = run_tool("iot-devices-cmp.py", "--query-string", "thingName:dr-bulk-*", "--wait", "90", env=bulk_env)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "NUM_THINGS_COMPARED: 12 NUM_THINGS_IN_SYNC: 12" in compared.stdout
    assert secondary.describe_thing(thingName="dr-bulk-12")["attributes"] == {"serialNumber": "12"}
    deleted = run_tool("delete-things.py", "--query-string", "thingName:dr-bulk-*", "-f", env=bulk_env, timeout=300)
    assert deleted.returncode == 0, deleted.stderr
    cloud.wait_idle()


def test_rsa_keys_on_request(cloud: LocalCloud, bulk_env: dict[str, str], tmp_path: Path) -> None:
    result = run_tool("bulk-bench.sh", "dr-rsa-", "2", "--rsa", env=bulk_env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    key = serialization.load_pem_private_key((only_directory(tmp_path) / "dr-rsa-1.key").read_bytes(), None)
    assert key.key_size == 2048  # type: ignore[union-attr]
    assert run_tool("delete-things.py", "--query-string", "thingName:dr-rsa-*", "-f", env=bulk_env).returncode == 0
    cloud.wait_idle()


def test_lines_that_fail_are_in_errors_json_and_the_exit_code(
    cloud: LocalCloud, bulk_env: dict[str, str], tmp_path: Path, primary: Any
) -> None:
    result = run_tool(
        "bulk-bench.sh", "dr-bad-", "3", "--policy-name", "no-such-policy", env=bulk_env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 1
    assert "task status: Completed registered: 0 errors: 3" in result.stdout
    errors = [json.loads(line) for line in (only_directory(tmp_path) / "errors.json").read_text().splitlines()]
    assert [e["lineNumber"] for e in errors] == [0, 1, 2]
    assert {e["errorCode"] for e in errors} == {"ResourceNotFoundException"}
    # AWS registers what it could before the failing resource; the emulation does the same, so clean up.
    run_tool("delete-things.py", "--query-string", "thingName:dr-bad-*", "-f", env=bulk_env)
    for certificate in primary.list_certificates()["certificates"]:
        if not primary.list_principal_things(principal=certificate["certificateArn"])["things"]:
            primary.update_certificate(certificateId=certificate["certificateId"], newStatus="INACTIVE")
            primary.delete_certificate(certificateId=certificate["certificateId"])
    cloud.wait_idle()


THING_TEMPLATE = {
    "Parameters": {"ThingName": {"Type": "String"}, "SerialNumber": {"Type": "String"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Ref": "ThingName"},
                "AttributePayload": {"serialNumber": {"Ref": "SerialNumber"}},
            },
        }
    },
}


def start_task(cloud: LocalCloud, toolsrc: dict[str, str], name: str, lines: list[dict[str, Any]]) -> str:
    """Upload ``lines`` as an input file and start a registration task of ``THING_TEMPLATE`` on it."""
    key = f"bulk-registration/{name}.json"
    body = "".join(json.dumps(line) + "\n" for line in lines)
    cloud.client("s3", PRIMARY).put_object(Bucket=toolsrc["S3_BUCKET"], Key=key, Body=body.encode())
    return str(
        cloud.client("iot", PRIMARY).start_thing_registration_task(
            templateBody=json.dumps(THING_TEMPLATE),
            inputFileBucket=toolsrc["S3_BUCKET"],
            inputFileKey=key,
            roleArn=toolsrc["ARN_IOT_PROVISIONING_ROLE"],
        )["taskId"]
    )


def report_lines(primary: Any, task_id: str, kind: str) -> list[dict[str, Any]]:
    lines = []
    for link in primary.list_thing_registration_task_reports(taskId=task_id, reportType=kind)["resourceLinks"]:
        with urllib.request.urlopen(link, timeout=60) as response:
            lines += [json.loads(line) for line in response.read().decode().splitlines()]
    return lines


def test_a_task_ends_only_once_its_reports_are_written(
    cloud: LocalCloud, toolsrc: dict[str, str], primary: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DescribeThingRegistrationTask and ListThingRegistrationTaskReports, asked while the reports are being written
    (the moment is made certain by asking from the task's own thread, right before it writes them), show the task
    still running: a client that sees it end always finds every line in the reports."""
    seen: list[tuple[str, int, list[str]]] = []
    write_reports = bulk_registration._write_reports

    def asking_first(*args: Any) -> Any:
        task_id = args[1].task_id
        described = primary.describe_thing_registration_task(taskId=task_id)
        links = primary.list_thing_registration_task_reports(taskId=task_id, reportType="RESULTS")["resourceLinks"]
        seen.append((described["status"], described["successCount"], links))
        return write_reports(*args)

    monkeypatch.setattr(bulk_registration, "_write_reports", asking_first)
    task_id = start_task(cloud, toolsrc, "dr-window", [{"ThingName": "dr-window-1", "SerialNumber": "1"}])
    assert cloud.wait_idle()
    assert [status for status, _, _ in seen] == ["InProgress"], seen
    task = primary.describe_thing_registration_task(taskId=task_id)
    assert (task["status"], task["successCount"], task["failureCount"]) == ("Completed", 1, 0)
    assert [line["lineNumber"] for line in report_lines(primary, task_id, "RESULTS")] == [0]
    primary.delete_thing(thingName="dr-window-1")
    cloud.wait_idle()


def test_a_line_the_iot_api_rejects_fails_alone_and_the_task_still_ends(
    cloud: LocalCloud, toolsrc: dict[str, str], primary: Any
) -> None:
    """A value the IoT API refuses before any request (a number where an attribute is a string) is that line's
    error; the task ends instead of running for ever and blocking the account's next task."""
    lines = [{"ThingName": "dr-num-1", "SerialNumber": 1}, {"ThingName": "dr-num-2", "SerialNumber": "2"}]
    task_id = start_task(cloud, toolsrc, "dr-num", lines)
    assert cloud.wait_idle()
    task = primary.describe_thing_registration_task(taskId=task_id)
    assert (task["status"], task["successCount"], task["failureCount"]) == ("Completed", 1, 1), task
    [error] = report_lines(primary, task_id, "ERRORS")
    assert (error["lineNumber"], error["errorCode"]) == (0, "InvalidRequestException")
    assert primary.describe_thing(thingName="dr-num-2")["attributes"] == {"serialNumber": "2"}
    primary.delete_thing(thingName="dr-num-2")
    cloud.wait_idle()


@pytest.mark.parametrize(
    ("args", "unset", "code", "message"),
    [
        (["dr-x-", "3"], "S3_BUCKET", 2, "bulk-bench.sh: error: S3_BUCKET is not set"),
        (["dr-x-", "3"], "ARN_IOT_PROVISIONING_ROLE", 2, "bulk-bench.sh: error: ARN_IOT_PROVISIONING_ROLE is not set"),
        (["dr-x-"], None, 2, "bulk-bench.sh: error: expected <base_thingname> <num_things>"),
        (["dr-x-", "many"], None, 2, "argument num_things: 'many' is not a whole number"),
        (["dr x", "3"], None, 2, "base_thingname may hold only letters"),
    ],
)
def test_bad_input(
    bulk_env: dict[str, str], tmp_path: Path, args: list[str], unset: str | None, code: int, message: str
) -> None:
    env = {k: v for k, v in bulk_env.items() if k != unset}
    result = run_tool("bulk-bench.sh", *args, env=env, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bulk_result_rejects_a_file_that_is_not_a_results_file(tool_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"lineNumber": 0}\n')
    result = run_tool("bulk-result.py", str(bad), env=tool_env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"bulk-result.py: error: {bad}:1: not a bulk registration result line")
