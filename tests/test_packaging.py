"""The product installs without the local cloud: `pip install .` brings no moto, and `iot-dr` works without it.

The wheel pip would install is built (no install) and its metadata read; the product's sources are scanned for
imports of the local cloud; and `iot-dr` runs with moto made unimportable, as in an environment without the extra.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT_SOURCES = [REPO / "source" / "layer", REPO / "source" / "tools", REPO / "source" / "lambda"]
LOCAL_CLOUD_ONLY = {"moto", "psutil", "pyOpenSSL", "plotly", "iot_dr_local"}
# Runs iot-dr as if the local extra were not installed: importing moto fails as it does without the package.
WITHOUT_MOTO = "import sys; sys.modules['moto'] = None; from iot_dr_cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    output = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(output), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = output.glob("*.whl")
    return zipfile.ZipFile(path)


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (member,) = [item for item in wheel.namelist() if item.endswith(f".dist-info/{name}")]
    return wheel.read(member).decode()


def test_the_wheel_requires_moto_only_with_the_local_extra(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(dist_info(wheel, "METADATA"))
    requirements = metadata.get_all("Requires-Dist") or []
    plain = [req for req in requirements if "extra ==" not in req]
    local = [req.split(";")[0].strip() for req in requirements if 'extra == "local"' in req]
    assert plain and not [req for req in plain if req.split("[")[0].split("=")[0] in LOCAL_CLOUD_ONLY], plain
    assert sorted(local) == [
        "moto[all,server]==5.2.5",
        "plotly==6.5.2",
        "psutil==7.2.2",
        "pyOpenSSL==26.2.0",
    ]
    assert {"local", "dev"} <= set(metadata.get_all("Provides-Extra") or [])


def test_the_wheel_declares_the_command_and_the_local_cloud_subcommands(wheel: zipfile.ZipFile) -> None:
    entry_points = dist_info(wheel, "entry_points.txt")
    assert "iot-dr = iot_dr_cli.main:main" in entry_points
    assert "[iot_dr.commands]" in entry_points
    assert "local = iot_dr_local.commands:register_local" in entry_points
    assert "demo = iot_dr_local.commands:register_demo" in entry_points
    assert "drill = iot_dr_local.commands:register_drill" in entry_points
    metadata_folders = (".dist-info", ".data")
    packages = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(metadata_folders)}
    assert packages == {"iot_dr", "iot_dr_cli", "iot_dr_local"}
    assert not [name for name in wheel.namelist() if "/tests/" in name or "conftest" in name]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_product_module_imports_the_local_cloud() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_modules(path) & LOCAL_CLOUD_ONLY)
        for root in PRODUCT_SOURCES
        for path in root.rglob("*.py")
        if imported_modules(path) & LOCAL_CLOUD_ONLY
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "command", [["local", "up", "--port", "0"], ["local", "outage", "us-east-1"], ["demo"], ["drill"]]
)
def test_without_the_local_extra_local_cloud_commands_say_how_to_install_it_and_exit_3(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_MOTO, *command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 3
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"iot-dr: error: 'iot-dr {command[0]}' needs the local cloud, which is not installed: ")
    assert "pip install 'disaster-recovery-for-aws-iot[local]'" in line


def test_without_the_local_extra_the_product_commands_still_work() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_MOTO, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "dead-letters" in result.stdout and "replay" in result.stdout
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_MOTO, "dead-letters"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "--region" in result.stderr
