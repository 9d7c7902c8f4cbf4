"""The README's sample walkthrough, run as written (bash, from a folder synced from the tools prefix) against
``iot-dr local up`` running as its own process."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("aws", "jq", "mosquitto", "knotd")

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists() for tool in NEEDED),
    reason=f"the walkthrough needs {', '.join(NEEDED)}",
)


def walkthrough_script() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- walkthrough -->\n```bash\n(.*?)```", readme, re.S)
    assert match, "README.md has no walkthrough block"
    return match.group(1)


def wait_for_ready(log: Path, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"READY endpoint=(\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"local up never became ready:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.timeout(900)
def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    bin_dir = str(Path(sys.executable).parent)
    # An operator's shell: no AWS settings and no LOG_LEVEL (a local cloud in this process may have set either).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "LOG_LEVEL"}
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    log = tmp_path / "local-up.log"
    with log.open("wb") as output:
        local_up = subprocess.Popen(
            [sys.executable, "-m", "iot_dr_cli.main", "local", "up", "--port", "0", "--mqtt-port", "0",
             "--dns-port", "0"],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        endpoint = wait_for_ready(log, local_up, 300)
        script = walkthrough_script().replace("http://127.0.0.1:5000", endpoint)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        local_up.send_signal(signal.SIGTERM)
        local_up.wait(120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "created dr-walkthrough in us-east-1" in out
    assert "NUM_THINGS_COMPARED: 1 NUM_THINGS_IN_SYNC: 1" in out
    assert out.count('"received": 2') == 2, "both pub/sub runs must receive their two messages"
    assert "NUM_SHADOWS_COMPARED: 5 NUM_SHADOWS_NOTSYNCED: 0 NUM_ERRORS: 0" in out
    assert out.count('": "PASSED"') == 5
    assert "NUM_THINGS_DELETED: 1 NUM_ERRORS: 0" in out
