"""The notebooks as stored: no outputs, parameters first, the current device SDK."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

JUPYTER_DIR = Path(__file__).resolve().parents[2] / "source" / "jupyter"
NOTEBOOKS = sorted(JUPYTER_DIR.glob("*.ipynb"))


def test_the_five_notebooks_of_the_guide_are_there() -> None:
    assert [path.stem[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_valid_without_outputs_or_execution_counts(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} is stored with outputs"
            assert cell.execution_count is None, f"{path.name} is stored with execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_first_code_cell_holds_the_parameters_and_only_assignments(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert not any("parameters" in cell.metadata.get("tags", []) for cell in code[1:])
    statements = [line for line in code[0].source.splitlines() if line.strip() and not line.startswith("#")]
    assert all(" = " in line and "(" not in line for line in statements), "parameters must be plain assignments"


def test_the_device_uses_the_current_sdk_with_mqtt5() -> None:
    sources = "\n".join(path.read_text() for path in [*NOTEBOOKS, JUPYTER_DIR / "iot_dr_pca.py"])
    assert "AWSIoTPythonSDK" not in sources
    assert "mqtt5_client_builder" in (JUPYTER_DIR / "iot_dr_pca.py").read_text()
