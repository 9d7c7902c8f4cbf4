"""build-docker-image-r2r.sh / -r2d.sh: arguments checked, then docker and the AWS CLI called with them.

Docker cannot run in the test environment: ``docker`` and ``aws`` are replaced on PATH by stand-ins that record
their arguments (and standard input), so the tests check what the scripts ask of them, not the image build.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "source" / "lambda" / "iot-dr-region-syncer"
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n[ "$1" = login ] && cat >> "$CALLS"\n'
RECORDER += '[ "$1 $2" = "ecr get-login-password" ] && echo secret-token\nexit 0\n'


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "aws"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")}


def build(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("script", "sync"),
    [("build-docker-image-r2r.sh", "region-to-region"), ("build-docker-image-r2d.sh", "region-to-ddb")],
)
def test_builds_logs_in_and_pushes_to_the_given_repository(stand_ins: dict[str, str], script: str, sync: str) -> None:
    result = build(script, "iot-dr/sync", "123456789012", "eu-north-1", "v1", env=stand_ins)

    assert result.returncode == 0, result.stderr
    image = "123456789012.dkr.ecr.eu-north-1.amazonaws.com/iot-dr/sync:v1"
    calls = Path(stand_ins["CALLS"]).read_text().splitlines()
    assert calls[0].startswith("docker build ") and f"--build-arg SYNC={sync}" in calls[0]
    assert f"--tag {image}" in calls[0]
    # The two ends of the login pipe run at once: their order is free, the token reaches docker on its input.
    assert sorted(calls[1:4]) == [
        "aws ecr get-login-password --region eu-north-1",
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-north-1.amazonaws.com",
        "secret-token",
    ]
    assert calls[4:] == [f"docker push {image}"]
    assert "secret-token" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "usage:"),
        (("repo", "123456789012"), "usage:"),
        (("Repo!", "123456789012", "eu-north-1"), "not an ECR repository name"),
        (("repo", "1234", "eu-north-1"), "12 digits"),
        (("repo", "123456789012", "europe"), "not an AWS region code"),
        (("repo", "123456789012", "eu-north-1", "bad tag"), "not an image tag"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_code_2(
    stand_ins: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = build("build-docker-image-r2r.sh", *args, env=stand_ins)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert message in line
    assert not Path(stand_ins["CALLS"]).exists(), "nothing may be built or pushed"


def test_scripts_parse() -> None:
    for script in SCRIPTS.glob("*.sh"):
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0, script
