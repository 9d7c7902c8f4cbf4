"""The artifact builder: what each zip holds, reproducibility, and that private keys never ship."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iot_dr_cli.build import REPO_ROOT, BuildResult, PackagingError, build_artifacts, main, read_artifacts

LAYER_ZIP = "iot-dr-layer.zip"
PREFIX = "disaster-recovery-for-aws-iot/v2.0.0/"


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    """A snapshot of the packaged parts of the repository, so other edits cannot race a test."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "source" / "lambda", root / "source" / "lambda", ignore=ignore)
    shutil.copytree(REPO_ROOT / "source" / "layer" / "iot_dr", root / "source" / "layer" / "iot_dr", ignore=ignore)
    (root / "deployment").mkdir()
    for template in (REPO_ROOT / "deployment").glob("*.template"):
        shutil.copy2(template, root / "deployment" / template.name)
    return root


def files_under(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def private_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_each_lambda_directory_becomes_one_zip_with_its_files_at_the_root(source_root: Path, tmp_path: Path) -> None:
    result = build_artifacts(tmp_path / "out", source_root=source_root)
    built = result.by_name()
    directories = sorted(p for p in (source_root / "source" / "lambda").iterdir() if p.is_dir())
    assert directories, "no Lambda sources to package"
    for directory in directories:
        with zipfile.ZipFile(built[f"{directory.name}.zip"].path) as archive:
            assert archive.namelist() == files_under(directory)
            for name in archive.namelist():
                assert archive.read(name) == (directory / name).read_bytes()


def test_layer_zip_holds_the_package_under_python_iot_dr_without_caches(source_root: Path, tmp_path: Path) -> None:
    layer_dir = source_root / "source" / "layer" / "iot_dr"
    (layer_dir / "__pycache__").mkdir()
    (layer_dir / "__pycache__" / "errors.cpython-311.pyc").write_bytes(b"\0compiled")
    (layer_dir / "stale.pyc").write_bytes(b"\0compiled")

    result = build_artifacts(tmp_path / "out", source_root=source_root)

    with zipfile.ZipFile(result.by_name()[LAYER_ZIP].path) as archive:
        names = archive.namelist()
    assert names == [f"python/iot_dr/{name}" for name in files_under(layer_dir)]
    assert "python/iot_dr/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_layer_zip_is_importable_the_way_lambda_mounts_it(tmp_path: Path) -> None:
    result = build_artifacts(tmp_path / "out")
    layer = result.by_name()[LAYER_ZIP].path
    # -S keeps the installed (editable) package out of sys.path, so only the zip can satisfy the import.
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import iot_dr.core.errors as e; print(e.__file__)"
    completed = subprocess.run(
        [sys.executable, "-S", "-c", probe, f"{layer}/python"], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == f"{layer}/python/iot_dr/core/errors.py"


def _installed_distribution(module_name: str, target: Path) -> None:
    """Copy an installed top-level module or package into ``target``, as pip --target would lay it out."""
    module = importlib.import_module(module_name)
    source = Path(str(module.__file__))
    if source.name == "__init__.py":
        shutil.copytree(source.parent, target / source.parent.name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(source, target / source.name)


def test_the_layer_vendored_with_powertools_runs_a_handler_with_nothing_else_on_the_path(
    source_root: Path, tmp_path: Path
) -> None:
    # What build-s3-dist.sh vendors into the layer: Powertools for AWS Lambda and its dependencies.
    site = tmp_path / "site"
    site.mkdir()
    for name in ("aws_lambda_powertools", "jmespath", "typing_extensions"):
        _installed_distribution(name, site)

    result = build_artifacts(tmp_path / "out", source_root=source_root, vendored={"iot-dr-layer": site})

    opt = tmp_path / "opt"
    with zipfile.ZipFile(result.by_name()[LAYER_ZIP].path) as archive:
        names = archive.namelist()
        archive.extractall(opt)
    assert "python/aws_lambda_powertools/logging/logger.py" in names
    assert not [n for n in names if not n.startswith("python/") or "__pycache__" in n]
    # Lambda extracts the layer to /opt and puts /opt/python on sys.path; -S keeps this environment's packages out.
    probe = (
        "import sys, logging; sys.path.insert(0, sys.argv[1])\n"
        "from iot_dr.core.logs import lambda_entry\n"
        "class Context:\n"
        "    function_name = 'f'; function_version = '1'; memory_limit_in_mb = 128; aws_request_id = 'r-1'\n"
        "    invoked_function_arn = 'arn:aws:lambda:eu-west-1:123456789012:function:f'\n"
        "handler = lambda_entry('id')(lambda event, context: logging.getLogger('iot_dr.x').info('hello'))\n"
        "handler({'id': 'event-7'}, Context())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(opt / "python")], capture_output=True, text=True, check=True
    )
    line = json.loads(completed.stdout)
    assert (line["message"], line["correlation_id"], line["function_request_id"]) == ("hello", "event-7", "r-1")


def test_two_builds_of_the_same_sources_are_byte_identical(source_root: Path, tmp_path: Path) -> None:
    first = build_artifacts(tmp_path / "first", source_root=source_root)
    for path in (source_root / "source").rglob("*"):
        os.utime(path, (1_900_000_000, 1_900_000_000))
    second = build_artifacts(tmp_path / "second", source_root=source_root)

    assert [(a.name, a.sha256) for a in first.artifacts] == [(a.name, a.sha256) for a in second.artifacts]
    for one, other in zip(first.artifacts, second.artifacts, strict=True):
        assert one.path.read_bytes() == other.path.read_bytes()


def test_zip_entries_are_sorted_with_fixed_timestamps_and_permissions(source_root: Path, tmp_path: Path) -> None:
    result = build_artifacts(tmp_path / "out", source_root=source_root)
    for artifact in result.artifacts:
        if not artifact.name.endswith(".zip"):
            continue
        with zipfile.ZipFile(artifact.path) as archive:
            infos = archive.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_templates_are_copied_unchanged_next_to_the_zips(source_root: Path, tmp_path: Path) -> None:
    result = build_artifacts(tmp_path / "out", source_root=source_root)
    templates = sorted((source_root / "deployment").glob("*.template"))
    assert templates
    for template in templates:
        assert (tmp_path / "out" / PREFIX / template.name).read_bytes() == template.read_bytes()
    assert result.prefix == PREFIX


def test_result_lists_every_built_file_with_its_sha256(source_root: Path, tmp_path: Path) -> None:
    result = build_artifacts(tmp_path / "out", source_root=source_root)
    assert isinstance(result, BuildResult)
    on_disk = sorted(p.name for p in (tmp_path / "out" / PREFIX).iterdir())
    assert sorted(a.name for a in result.artifacts) == on_disk
    for artifact in result.artifacts:
        assert artifact.path.parent == tmp_path / "out" / PREFIX
        assert artifact.sha256 == hashlib.sha256(artifact.path.read_bytes()).hexdigest()


def test_build_holds_every_package_the_templates_deploy(tmp_path: Path) -> None:
    """The templates' default ArtifactPrefix and S3 keys name exactly what the build uploads."""
    cfnlint_decode = pytest.importorskip("cfnlint.decode")
    result = build_artifacts(tmp_path / "out")
    built = set(result.by_name())
    for template in (REPO_ROOT / "deployment").glob("*.template"):
        parsed, matches = cfnlint_decode.decode(str(template))
        assert not matches
        assert parsed["Parameters"]["ArtifactPrefix"]["Default"] == result.prefix
        for resource in parsed["Resources"].values():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::Function":
                key = props["Code"]["S3Key"]["Fn::Sub"]
            elif resource["Type"] == "AWS::Lambda::LayerVersion":
                key = props["Content"]["S3Key"]["Fn::Sub"]
            else:
                continue
            assert key.removeprefix("${ArtifactPrefix}") in built, f"{template.name} deploys a missing {key}"


def test_a_newer_build_replaces_the_previous_one(source_root: Path, tmp_path: Path) -> None:
    build_artifacts(tmp_path / "out", source_root=source_root)
    shutil.rmtree(source_root / "source" / "lambda" / "iot-dr-park-event", ignore_errors=True)
    (source_root / "source" / "lambda" / "iot-dr-park-event").mkdir()
    (source_root / "source" / "lambda" / "iot-dr-park-event" / "park_event.py").write_text("handler = print\n")
    (tmp_path / "out" / PREFIX / "leftover.zip").write_bytes(b"old")

    result = build_artifacts(tmp_path / "out", source_root=source_root)

    assert not (tmp_path / "out" / PREFIX / "leftover.zip").exists()
    with zipfile.ZipFile(result.by_name()["iot-dr-park-event.zip"].path) as archive:
        assert archive.read("park_event.py") == b"handler = print\n"


@pytest.mark.parametrize(
    ("relative_path", "content"),
    [
        ("source/lambda/iot-dr-jitr/device.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ("source/lambda/iot-dr-jitr/device.key", b"anything"),
        ("source/layer/iot_dr/secondary/replicate/bundle.p12", b"\x30\x82"),
        ("source/lambda/iot-dr-jitr/embedded.py", b'KEY = """\n' + private_key_pem() + b'"""\n'),
        ("source/layer/iot_dr/fixture.json", b'{"key": "' + private_key_pem().replace(b"\n", b"\\n") + b'"}'),
        ("deployment/leaky.template", b"Resources: {}\n# " + private_key_pem()),
    ],
    ids=["pem-file", "key-file", "p12-in-layer", "key-in-python", "key-in-layer-data", "key-in-template"],
)
def test_build_fails_and_writes_nothing_when_a_private_key_or_pem_file_is_found(
    source_root: Path, tmp_path: Path, relative_path: str, content: bytes
) -> None:
    leak = source_root / relative_path
    leak.parent.mkdir(parents=True, exist_ok=True)
    leak.write_bytes(content)

    with pytest.raises(PackagingError, match=leak.name):
        build_artifacts(tmp_path / "out", source_root=source_root)

    assert not (tmp_path / "out").exists()


def test_code_that_only_names_the_pem_header_is_packaged(source_root: Path, tmp_path: Path) -> None:
    module = source_root / "source" / "layer" / "iot_dr" / "redaction_probe.py"
    module.write_text('PRIVATE_KEY_HEADER = "-----BEGIN RSA PRIVATE KEY-----"\n')

    result = build_artifacts(tmp_path / "out", source_root=source_root)

    with zipfile.ZipFile(result.by_name()[LAYER_ZIP].path) as archive:
        assert "python/iot_dr/redaction_probe.py" in archive.namelist()


def test_an_empty_lambda_directory_fails_the_build(source_root: Path, tmp_path: Path) -> None:
    empty = source_root / "source" / "lambda" / "iot-dr-empty"
    (empty / "__pycache__").mkdir(parents=True)
    (empty / "__pycache__" / "x.pyc").write_bytes(b"\0")

    with pytest.raises(PackagingError, match="iot-dr-empty"):
        build_artifacts(tmp_path / "out", source_root=source_root)


@pytest.mark.parametrize("version", ["2.0.0", "v2", "v2.0.0/../..", "latest"])
def test_version_must_be_a_v_prefixed_release(source_root: Path, tmp_path: Path, version: str) -> None:
    with pytest.raises(PackagingError, match="version"):
        build_artifacts(tmp_path / "out", version, source_root=source_root)


def test_command_line_prints_the_checksum_and_key_of_every_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "out"), "--version", "v2.1.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = sorted(line.split("  ")[1] for line in lines)
    assert keys == sorted(
        f"disaster-recovery-for-aws-iot/v2.1.0/{p.name}"
        for p in (tmp_path / "out" / "disaster-recovery-for-aws-iot" / "v2.1.0").iterdir()
    )
    for line in lines:
        digest, key = line.split("  ")
        assert digest == hashlib.sha256((tmp_path / "out" / key).read_bytes()).hexdigest()


def test_vendored_packages_land_at_the_root_of_their_function_zip_without_caches(
    source_root: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    (site / "awsiot").mkdir(parents=True)
    (site / "awsiot" / "__init__.py").write_text("VERSION = 1\n")
    (site / "awsiot" / "__pycache__").mkdir()
    (site / "awsiot" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\0")
    (site / "bin").mkdir()
    (site / "bin" / "tool").write_text("#!/bin/sh\n")

    result = build_artifacts(tmp_path / "out", source_root=source_root, vendored={"iot-dr-r53-health-checker": site})

    with zipfile.ZipFile(result.by_name()["iot-dr-r53-health-checker.zip"].path) as archive:
        names = archive.namelist()
        assert archive.read("awsiot/__init__.py") == b"VERSION = 1\n"
    assert "health_checker.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("bin/")]
    with zipfile.ZipFile(result.by_name()["iot-dr-jitr.zip"].path) as archive:
        assert "awsiot/__init__.py" not in archive.namelist()


def test_vendoring_into_an_unknown_function_is_refused(source_root: Path, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="unknown function iot-dr-nope"):
        build_artifacts(tmp_path / "out", source_root=source_root, vendored={"iot-dr-nope": tmp_path})


def test_an_earlier_build_reads_back_with_the_same_files_and_checksums(source_root: Path, tmp_path: Path) -> None:
    built = build_artifacts(tmp_path / "out", "v3.1.4", source_root=source_root, solution_name="my-iot-dr")

    read = read_artifacts(tmp_path / "out", "my-iot-dr/v3.1.4/")

    assert read.prefix == built.prefix == "my-iot-dr/v3.1.4/"
    assert sorted((a.name, a.sha256) for a in read.artifacts) == sorted((a.name, a.sha256) for a in built.artifacts)
    with pytest.raises(PackagingError, match="no artifacts"):
        read_artifacts(tmp_path / "out", "my-iot-dr/v9.9.9/")
