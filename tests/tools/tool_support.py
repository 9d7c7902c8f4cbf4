"""Names and helpers shared by the operator-tool tests (imported by name: every test folder has a conftest)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "source" / "tools"


def parse_toolsrc(text: str) -> dict[str, str]:
    """``export NAME=value`` lines (values quoted with shlex) as a dict."""
    variables = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            variables[name] = shlex.split(value)[0] if value else ""
    return variables


def run_tool(
    name: str, *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``source/tools/<name>`` as an operator would (Python tools with this interpreter)."""
    path = TOOLS / name
    argv = [sys.executable, str(path), *args] if name.endswith(".py") else [str(path), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, input=stdin, timeout=timeout, check=False
    )


needs_aws_cli = pytest.mark.skipif(
    shutil.which("aws") is None, reason="the AWS CLI is needed by the shell tools (pip install awscli)"
)
