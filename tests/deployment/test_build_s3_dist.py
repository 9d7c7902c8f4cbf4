"""deployment/build-s3-dist.sh: the assets AWS Solutions publish, and the CodeBuild source the main stack runs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deployment" / "build-s3-dist.sh"
NAME, VERSION, BUCKET = "disaster-recovery-for-aws-iot", "v2.3.4", "my-solutions"
PREFIX = f"{NAME}/{VERSION}/"


def build(output: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), BUCKET, NAME, VERSION, "--output", str(output), *options],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    result = build(output, "--no-vendor")
    assert result.returncode == 0, result.stderr
    return output


def lambda_directories() -> set[str]:
    return {p.name for p in (REPO / "source" / "lambda").iterdir() if p.is_dir() and p.name != "__pycache__"}


def test_global_assets_are_the_templates_with_bucket_and_version_filled_in(dist: Path) -> None:
    templates = sorted(p.name for p in (dist / "global-s3-assets").iterdir())
    assert templates == sorted(p.name for p in (REPO / "deployment").glob("*.template"))
    for name in templates:
        text = (dist / "global-s3-assets" / name).read_text()
        assert "%%" not in text, name
        parsed, matches = decode(str(dist / "global-s3-assets" / name))
        assert not matches
        assert parsed["Parameters"]["ArtifactPrefix"]["Default"] == PREFIX, name
    main, _ = decode(str(dist / "global-s3-assets" / "disaster-recovery-for-aws-iot.template"))
    assert main["Parameters"]["ArtifactBucketPrefix"]["Default"] == BUCKET


def test_regional_assets_are_one_zip_per_function_the_layer_and_the_codebuild_source(dist: Path) -> None:
    zips = {p.name for p in (dist / "regional-s3-assets").iterdir()}
    assert zips == {f"{d}.zip" for d in lambda_directories()} | {"iot-dr-layer.zip", "iot-dr-solution.zip"}


def test_layer_zip_holds_only_the_layer_package_no_moto_no_local_cloud_no_tests(dist: Path) -> None:
    layer = dist / "regional-s3-assets" / "iot-dr-layer.zip"
    with zipfile.ZipFile(layer) as archive:
        names = archive.namelist()
    # Lambda puts python/ on sys.path: the zip's only top-level entry, holding the iot_dr package alone.
    assert {name.split("/")[0] for name in names} == {"python"}
    assert {name.split("/")[1] for name in names} == {"iot_dr"}
    package = REPO / "source" / "layer" / "iot_dr"
    expected = {f"python/iot_dr/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert {name for name in names if name.endswith(".py")} == expected
    forbidden = ("moto", "iot_dr_local", "test", "conftest", "__pycache__", ".pyc")
    assert not [name for name in names if any(word in name for word in forbidden)]
    assert layer.stat().st_size < 200_000


def test_codebuild_source_holds_the_buildspec_the_tools_and_every_artifact_the_launcher_uploads(dist: Path) -> None:
    with zipfile.ZipFile(dist / "regional-s3-assets" / "iot-dr-solution.zip") as archive:
        names = set(archive.namelist())
        assert archive.read("buildspec.yml") == (REPO / "buildspec.yml").read_bytes()
        for artifact in (dist / "regional-s3-assets").glob("iot-dr-*.zip"):
            if artifact.name != "iot-dr-solution.zip":
                assert archive.read(f"artifacts/{PREFIX}{artifact.name}") == artifact.read_bytes()
        for template in (dist / "global-s3-assets").iterdir():
            assert archive.read(f"artifacts/{PREFIX}{template.name}") == template.read_bytes()
    assert {"source/tools/iot_dr_cli/launcher.py", "source/layer/iot_dr/deploy/uninstall.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_buildspec_hands_every_variable_the_custom_resource_and_project_set_to_the_launcher() -> None:
    from iot_dr.deploy import launch_solution

    buildspec = yaml.safe_load((REPO / "buildspec.yml").read_text())
    command = " ".join(buildspec["phases"]["build"]["commands"])
    assert buildspec["version"] == 0.2
    for variable in (*launch_solution.BUILD_VARIABLES, "ARTIFACT_PREFIX", "DEPLOYMENT_ROLE_ARN", "CODEBUILD_SRC_DIR"):
        assert f'"${variable}' in command, variable
    parsed, _ = decode(str(REPO / "deployment" / "disaster-recovery-for-aws-iot.template"))
    project = parsed["Resources"]["LaunchProject"]["Properties"]
    assert {v["Name"] for v in project["Environment"]["EnvironmentVariables"]} == {
        "ARTIFACT_PREFIX",
        "DEPLOYMENT_ROLE_ARN",
    }
    assert project["Source"]["BuildSpec"] == "buildspec.yml"


# Parameters of the main stack that the launcher hands on, and the regional templates that declare them.
PASSED_ON = {
    "HealthCheckMode": ("r53-health-checker",),
    "RateLimitPerIp": ("r53-health-checker",),
    "AlarmEmail": ("primary-region", "secondary-region", "r53-health-checker"),
}


@pytest.mark.parametrize("name", sorted(PASSED_ON))
def test_main_stack_offers_what_the_regional_stacks_accept_and_hands_it_to_the_launch(name: str) -> None:
    main, _ = decode(str(REPO / "deployment" / "disaster-recovery-for-aws-iot.template"))
    parameter = main["Parameters"][name]
    assert parameter["Description"]
    assert name in main["Resources"]["LaunchSolution"]["Properties"]
    grouped = [
        p
        for group in main["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        for p in group["Parameters"]
    ]
    assert name in grouped
    for kind in PASSED_ON[name]:
        regional, _ = decode(str(REPO / "deployment" / f"disaster-recovery-for-aws-iot-{kind}.template"))
        declared = regional["Parameters"][name]
        for key in ("Type", "Default", "AllowedValues", "AllowedPattern"):
            assert parameter.get(key) == declared.get(key), (kind, key)


@pytest.mark.parametrize(
    ("option", "value", "stacks"),
    [
        ("--health-check-mode", "cloudwatch-alarm", {"health_checker": "HealthCheckMode"}),
        ("--rate-limit-per-ip", "500", {"health_checker": "RateLimitPerIp"}),
        (
            "--alarm-email",
            "ops@example.com",
            {"primary": "AlarmEmail", "secondary": "AlarmEmail", "health_checker": "AlarmEmail"},
        ),
    ],
)
def test_launcher_hands_the_main_stacks_choices_to_the_regional_stacks(
    option: str, value: str, stacks: dict[str, str]
) -> None:
    from iot_dr_cli import launcher

    base = ["--primary-region", "us-east-1", "--secondary-region", "us-west-2", "--bucket-suffix", "s"]
    config = launcher.config_from_args(launcher.build_parser().parse_args([*base, option, value]))
    for stack, parameter in stacks.items():
        assert getattr(config, f"{stack}_parameters")[parameter] == value


def test_launcher_refuses_a_value_the_regional_templates_do_not_allow(capsys: pytest.CaptureFixture[str]) -> None:
    from iot_dr_cli import launcher

    base = ["--primary-region", "us-east-1", "--secondary-region", "us-west-2", "--bucket-suffix", "s"]
    with pytest.raises(SystemExit) as exit_info:
        launcher.build_parser().parse_args([*base, "--rate-limit-per-ip", "7"])
    assert exit_info.value.code == 2 and "--rate-limit-per-ip" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        ([BUCKET, NAME, "2.0"], 1, "version 2.0 must look like v2.0.0"),
        (["Bad_Bucket", NAME, VERSION], 1, "not a valid bucket name"),
        ([BUCKET, NAME], 2, "usage:"),
    ],
    ids=["version", "bucket", "missing-argument"],
)
def test_bad_arguments_are_refused_before_anything_is_built(
    tmp_path: Path, arguments: list[str], code: int, message: str
) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), *arguments, "--output", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, message in result.stderr) == (code, True), result.stderr
    assert not list(tmp_path.iterdir())


def _pypi_reachable(tmp_path: Path) -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--platform",
         "manylinux2014_x86_64", "--python-version", "3.12", "awsiotsdk==1.31.0", "-d", str(tmp_path / "probe")],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    return probe.returncode == 0


def test_health_checker_zips_carry_the_linux_builds_of_the_iot_sdk_and_cryptography_for_the_lambda_runtime(
    tmp_path: Path,
) -> None:
    if not _pypi_reachable(tmp_path):
        pytest.skip("PyPI is unreachable: the vendored awsiotsdk/awscrt and cryptography wheels cannot be downloaded")
    result = build(tmp_path / "dist")
    assert result.returncode == 0, result.stderr

    with zipfile.ZipFile(tmp_path / "dist" / "regional-s3-assets" / "iot-dr-r53-health-checker.zip") as archive:
        names = set(archive.namelist())
        native = archive.read("_awscrt.abi3.so")
    assert {"health_checker.py", "awsiot/mqtt5_client_builder.py", "awscrt/mqtt5.py"} <= names
    # ELF, 64-bit, x86-64: the Lambda python3.12 x86_64 runtime loads it.
    assert native[:5] == b"\x7fELF\x02" and int.from_bytes(native[18:20], "little") == 0x3E
    # The credentials function makes the checker's key and CSR with cryptography, which the runtime lacks.
    with zipfile.ZipFile(tmp_path / "dist" / "regional-s3-assets" / "iot-dr-r53-checker-credentials.zip") as archive:
        names = set(archive.namelist())
        native = archive.read("cryptography/hazmat/bindings/_rust.abi3.so")
    assert {"checker_credentials_resource.py", "cryptography/x509/__init__.py"} <= names
    assert native[:5] == b"\x7fELF\x02" and int.from_bytes(native[18:20], "little") == 0x3E
    # Every function logs with Powertools for AWS Lambda, which the runtime lacks: the layer carries it.
    with zipfile.ZipFile(tmp_path / "dist" / "regional-s3-assets" / "iot-dr-layer.zip") as archive:
        names = set(archive.namelist())
    assert {"python/iot_dr/core/logs.py", "python/aws_lambda_powertools/logging/logger.py"} <= names
