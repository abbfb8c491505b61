"""Run the JavaScript client's own tests (``node --test``) as part of the pytest suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js"


def test_js_client_suite_passes() -> None:
    node = shutil.which("node")
    assert node, "node (>= 20.10) is needed for the browser client's tests"
    hubbub = Path(sys.executable).with_name("hubbub")
    result = subprocess.run(
        [node, "--experimental-websocket", "--test", "test/"],
        cwd=CLIENT,
        env={**os.environ, "HUBBUB_BIN": str(hubbub)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
