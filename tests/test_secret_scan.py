"""No key leaves the machine: the build and the launcher refuse every artifact that holds a key or secret."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iot_dr_cli.build import REPO_ROOT, PackagingError, build_artifacts
from iot_dr_cli.launcher import SolutionFiles, upload_solution_files
from iot_dr_cli.secret_scan import SecretFound, refuse_secret_text, refuse_secrets, secret_in

# AWS's documented example credentials (IAM user guide): shaped like real ones, valid nowhere.
EXAMPLE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def notebook(outputs: list[dict[str, object]]) -> str:
    cell = {"cell_type": "code", "source": ["print(key)"], "metadata": {}, "execution_count": None, "outputs": outputs}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    """A copy of everything the build packs or checks, so a planted key never touches the working tree."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("source/lambda", "source/layer/iot_dr", "source/tools", "source/jupyter"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=ignore)
    (root / "deployment").mkdir()
    for template in (REPO_ROOT / "deployment").glob("*.template"):
        shutil.copy2(template, root / "deployment" / template.name)
    return root


@pytest.mark.parametrize(
    ("relative_path", "content"),
    [
        ("source/tools/left-behind.py", lambda: f'KEY = """{private_key_pem()}"""\n'),
        ("source/tools/certs/device.key", lambda: "not even a key"),
        (
            "source/jupyter/walkthrough.ipynb",
            lambda: notebook([{"output_type": "stream", "name": "stdout", "text": [private_key_pem()]}]),
        ),
        (
            "source/jupyter/harmless.ipynb",
            lambda: notebook([{"output_type": "stream", "name": "stdout", "text": ["3 things\n"]}]),
        ),
        (
            "source/tools/profile.ini",
            lambda: (
                f"aws_access_key_id = {EXAMPLE_ACCESS_KEY_ID}\naws_secret_access_key = {EXAMPLE_SECRET_ACCESS_KEY}\n"
            ),
        ),
    ],
    ids=["key-in-tool", "key-file-in-tools", "key-in-notebook-output", "any-notebook-output", "aws-secret-key"],
)
def test_build_fails_naming_the_file_that_would_ship_a_secret(
    source_root: Path, tmp_path: Path, relative_path: str, content: object
) -> None:
    leak = source_root / relative_path
    leak.parent.mkdir(parents=True, exist_ok=True)
    leak.write_text(content())  # type: ignore[operator]

    with pytest.raises(PackagingError, match=leak.name):
        build_artifacts(tmp_path / "out", source_root=source_root)

    assert not (tmp_path / "out").exists()


def test_the_repository_as_committed_builds(source_root: Path, tmp_path: Path) -> None:
    (source_root / "source/jupyter/clean.ipynb").write_text(notebook([]))

    assert build_artifacts(tmp_path / "out", source_root=source_root).artifacts


def test_an_access_key_id_alone_is_not_a_secret(tmp_path: Path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(f"Credentials look like {EXAMPLE_ACCESS_KEY_ID}; never commit them.\n")

    assert secret_in(doc) is None


def test_a_zip_is_scanned_member_by_member(tmp_path: Path) -> None:
    archive_path = tmp_path / "iot-dr-solution.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("source/tools/ok.py", "print('fine')\n")
        archive.writestr("artifacts/inner/secret.py", f"KEY = '''{private_key_pem()}'''\n")

    with pytest.raises(SecretFound, match=r"iot-dr-solution\.zip.*artifacts/inner/secret\.py"):
        refuse_secrets([archive_path])


def test_the_launcher_uploads_nothing_when_one_tool_holds_a_key(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "a_tool.py").write_text("print('fine')\n")
    (tools / "z_leak.py").write_text(f"KEY = '''{private_key_pem()}'''\n")

    # Refused before the S3 client is even created, so no endpoint is needed and nothing is uploaded.
    with pytest.raises(SecretFound, match=r"z_leak\.py"):
        upload_solution_files("us-east-1", "bucket", SolutionFiles(tools=tools, notebooks=None, lambda_sources=None))


def test_generated_toolsrc_with_a_secret_is_refused() -> None:
    with pytest.raises(SecretFound, match="toolsrc"):
        refuse_secret_text(
            "tools/toolsrc",
            f"export AWS_SECRET_ACCESS_KEY={EXAMPLE_SECRET_ACCESS_KEY}\n"
            f"export AWS_ACCESS_KEY_ID={EXAMPLE_ACCESS_KEY_ID}\n",
        )
