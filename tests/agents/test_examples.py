"""Every example, and the demo, run to completion offline with the scripted model."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Examples that need an optional extra have their own test beside that extra's tests.
TESTED_ELSEWHERE = {"deep_agent.py": "tests/deep_agents/test_example.py"}
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name not in TESTED_ELSEWHERE)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# What each example must print: proof that its code really ran in a sandbox.
EXPECTED = {
    "create_agent.py": ["Out[2]: 10", "Both answers came from sandbox"],
    "react_agent.py": ["2 3 5 7 11 13 17 19 23 29 31 37 41 43 47\n   Exit code: 0"],
    "langgraph_node.py": [
        "Sandbox output: 104743",
        "maps thread 'primes' to sandbox",
        "the model reads:\nNote: the sandbox had stopped (it expired or was killed) and was "
        "restarted, so all earlier variables, imports, installed packages and files are gone."
        "\n104743",
    ],
    "streaming.py": ["live stdout] 'liftoff\\n'", "event stdout] 'liftoff\\n'"],
    "data_analysis.py": ["Uploaded /home/user/sales.csv", "Chart downloaded to"],
    "code_tools.py": [
        "[run_code] total 1180.00 EUR, dearest item-39 at 58.75 EUR",
        "'price': 40",
    ],
    "background_jobs.py": [
        "[job_output] job-1 `python3 -u -m http.server 8000`: running",
        '"GET / HTTP/1.1" 200',
        "[job_stop] job-1 `python3 -u -m http.server 8000`: stopped (exit code 143).",
    ],
}


def _env(connection: dict[str, Any]) -> dict[str, str]:
    """This test session's backend for the child, and no provider keys: offline, scripted."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k != "LANGCHAIN_E2B_MODEL"
    }
    env["E2B_API_KEY"] = connection["api_key"]
    for option, variable in (("api_url", "E2B_API_URL"), ("sandbox_url", "E2B_SANDBOX_URL")):
        if option in connection:
            env[variable] = connection[option]
    return env


def _run(args: list[str], cwd: Path, connection: dict[str, Any]) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(connection),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED)
    for test in TESTED_ELSEWHERE.values():
        assert (ROOT / test).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, e2b_connection: dict[str, Any], tmp_path: Path) -> None:
    out = _run([str(example)], tmp_path, e2b_connection)

    assert out.startswith("Using the bundled scripted chat model")
    for expected in EXPECTED[example.name]:
        assert expected in out
    if example.name == "data_analysis.py":
        assert (tmp_path / "products.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
def test_demo_runs_offline_and_saves_the_chart_and_notebook(
    e2b_connection: dict[str, Any], tmp_path: Path
) -> None:
    out = _run(
        ["-m", "langchain_e2b", "demo", "--output-dir", "result"],
        tmp_path,
        e2b_connection,
    )

    lines = out.splitlines()
    assert lines[0].startswith("Using the bundled scripted chat model")
    # Sandbox output streamed as it ran, the error was hit, and the summary has real numbers.
    assert "  > 390 rows x 5 columns" in lines
    assert any("x error" in line and "AttributeError" in line for line in lines)
    assert "6 steps, 1 error(s)" in out
    assert "Harbor leads with $" in out
    chart = tmp_path / "result" / "revenue_by_month.png"
    notebook_path = tmp_path / "result" / "analysis.ipynb"
    assert f"Chart:    {chart}" in lines
    assert f"Notebook: {notebook_path}" in lines
    assert chart.read_bytes().startswith(PNG_MAGIC)

    notebook = nbformat.read(str(notebook_path), as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) == 6
    assert code[2].outputs[-1].ename == "AttributeError"
    pngs = [
        base64.b64decode(o.data["image/png"])
        for o in code[4].outputs
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.data
    ]
    assert pngs
    assert pngs[0].startswith(PNG_MAGIC)
    assert len(notebook.metadata["langchain_e2b"]["sandbox_ids"]) == 1
