"""Notebook export: real cells from a real sandbox, and records covering every output kind."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import nbformat

from langchain_e2b import E2BSandboxSession
from langchain_e2b._format import CodeResult
from langchain_e2b.notebook import export_notebook, to_notebook

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A saved chart displayed as an image: one PNG output whatever matplotlib backend the kernel uses.
_PLOT = """\
import matplotlib.pyplot as plt
plt.plot([1, 4, 9])
plt.show()"""


def test_exported_session_notebook_validates_and_holds_the_image(
    e2b_connection: dict[str, Any], tmp_path: Path
) -> None:
    with E2BSandboxSession(**e2b_connection) as session:
        session.run_code("print('hello')")
        session.run_code("21 * 2")
        session.run_code("1 / 0")
        session.run_code(_PLOT)
        path = export_notebook(session, tmp_path / "out" / "session.ipynb", title="Test run")

    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.source for c in code[:3]] == ["print('hello')", "21 * 2", "1 / 0"]
    assert code[0].outputs[0].text == "hello\n"
    assert code[1].outputs[0].output_type == "execute_result"
    assert code[1].outputs[0].data["text/plain"] == "42"
    assert code[2].outputs[0].output_type == "error"
    assert code[2].outputs[0].ename == "ZeroDivisionError"
    images = [o.data["image/png"] for o in code[3].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(PNG_MAGIC)
    assert notebook.metadata["langchain_e2b"]["sandbox_ids"] == [session.history[0].sandbox_id]


def test_every_output_kind_maps_to_a_valid_notebook() -> None:
    cells = [
        CodeResult(code="x = 1", execution_count=1, sandbox_id="sbx-1"),
        CodeResult(
            code="chart()",
            execution_count=2,
            stderr="warning\n",
            results=[
                {
                    "data": {
                        "text/plain": "<Figure>",
                        "image/png": base64.b64encode(PNG_MAGIC).decode(),
                        "e2b/data": {"type": "bar", "elements": []},
                        "application/json": '{"a": 1}',
                    },
                    "is_main_result": False,
                }
            ],
            sandbox_id="sbx-1",
        ),
        CodeResult(
            code="while True: pass",
            timed_out=True,
            timeout=5,
            error={"name": "TimeoutError", "value": "", "traceback": "line 1\nline 2"},
            sandbox_id="sbx-1",
        ),
        CodeResult(code="x", notice="The sandbox was restarted.", sandbox_id="sbx-2"),
    ]

    notebook = to_notebook(cells)

    nbformat.validate(notebook)
    kinds = [c.cell_type for c in notebook.cells]
    assert kinds == ["code", "code", "code", "markdown", "code"]
    display = notebook.cells[1].outputs[1]
    assert display.output_type == "display_data"
    assert display.data["application/vnd.e2b.data+json"] == {"type": "bar", "elements": []}
    assert display.data["application/json"] == {"a": 1}
    timed_out = notebook.cells[2].outputs
    assert timed_out[0].traceback == ["line 1", "line 2"]
    assert "timed out after 5" in timed_out[1].text
    assert "restarted" in notebook.cells[3].source
    assert notebook.metadata["langchain_e2b"]["sandbox_ids"] == ["sbx-1", "sbx-2"]
    assert len({c.id for c in notebook.cells}) == len(notebook.cells)
