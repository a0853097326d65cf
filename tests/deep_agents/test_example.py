"""examples/deep_agent.py runs offline with the scripted model, against this session's runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deep_agent.py"


@pytest.mark.slow
def test_deep_agent_example_runs(e2b_connection: dict[str, Any], tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k != "LANGCHAIN_E2B_MODEL"
    }
    env["E2B_API_KEY"] = e2b_connection["api_key"]
    for option, variable in (("api_url", "E2B_API_URL"), ("sandbox_url", "E2B_SANDBOX_URL")):
        if option in e2b_connection:
            env[variable] = e2b_connection[option]
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    assert out.startswith("Using the bundled scripted chat model")
    assert "[live stdout]" in out
    assert "43 47 53 59\n    \n    [Command succeeded with exit code 0]" in out
    assert "[run_code] Out[2]: 6" in out
    assert "(+1 image)" in out
    assert "Everything ran in sandbox " in out
