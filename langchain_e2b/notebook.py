"""Write a session's executed cells, with their outputs, as a Jupyter notebook."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from langchain_e2b._format import CodeResult
from langchain_e2b.session import E2BSandboxSession

_JSON_MIME = re.compile(r"^application/(.*\+)?json$")
# Chart data from the code interpreter; renamed so that the notebook schema accepts it.
_E2B_DATA_MIME = "application/vnd.e2b.data+json"


def _mime_bundle(data: dict[str, Any]) -> dict[str, Any]:
    bundle: dict[str, Any] = {}
    for mime, value in data.items():
        if mime == "e2b/data":
            mime = _E2B_DATA_MIME
        if _JSON_MIME.match(mime):
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    continue
            if isinstance(value, dict):
                bundle[mime] = value
        elif isinstance(value, str):
            bundle[mime] = value
    return bundle


def _stream(name: str, text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def _outputs(cell: CodeResult) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    if cell.stdout:
        outputs.append(_stream("stdout", cell.stdout))
    if cell.stderr:
        outputs.append(_stream("stderr", cell.stderr))
    for result in cell.results:
        bundle = _mime_bundle(result.get("data") or {})
        if not bundle:
            continue
        if result.get("is_main_result"):
            outputs.append(
                {
                    "output_type": "execute_result",
                    "data": bundle,
                    "metadata": {},
                    "execution_count": cell.execution_count,
                }
            )
        else:
            outputs.append({"output_type": "display_data", "data": bundle, "metadata": {}})
    if cell.error is not None:
        traceback: Any = cell.error.get("traceback") or ""
        outputs.append(
            {
                "output_type": "error",
                "ename": cell.error.get("name") or "Error",
                "evalue": cell.error.get("value") or "",
                "traceback": traceback.splitlines()
                if isinstance(traceback, str)
                else [str(line) for line in traceback],
            }
        )
    if cell.timed_out:
        outputs.append(_stream("stderr", f"Execution timed out after {cell.timeout} seconds.\n"))
    return outputs


def _markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def to_notebook(cells: Iterable[CodeResult], *, title: str | None = None) -> NotebookNode:
    """Build a validated notebook from executed cells.

    A cell that followed a sandbox restart is preceded by a Markdown cell saying so, because the
    state it ran against is not the state the earlier cells built.

    Args:
        cells: Executed cells, oldest first (``E2BSandboxSession.history``).
        title: Optional Markdown heading for the first cell.

    Returns:
        An nbformat v4 notebook.

    Raises:
        nbformat.ValidationError: If the result does not match the notebook schema.
    """
    notebook_cells: list[dict[str, Any]] = []
    if title:
        notebook_cells.append(_markdown(f"# {title}"))
    sandbox_ids: list[str] = []
    for cell in cells:
        if cell.sandbox_id and cell.sandbox_id not in sandbox_ids:
            sandbox_ids.append(cell.sandbox_id)
        if cell.notice:
            notebook_cells.append(_markdown(f"> {cell.notice}"))
        metadata: dict[str, Any] = {}
        if cell.language and cell.language != "python":
            metadata["language"] = cell.language
        notebook_cells.append(
            {
                "cell_type": "code",
                "metadata": metadata,
                "source": cell.code,
                "execution_count": cell.execution_count,
                "outputs": _outputs(cell),
            }
        )
    notebook: NotebookNode = nbformat.from_dict(  # type: ignore[no-untyped-call]
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
                "langchain_e2b": {"sandbox_ids": sandbox_ids},
            },
            # nbformat 4.5 requires a unique id per cell.
            "cells": [{"id": f"cell-{n}", **cell} for n, cell in enumerate(notebook_cells)],
        }
    )
    nbformat.validate(notebook)
    return notebook


def export_notebook(
    source: E2BSandboxSession | Iterable[CodeResult],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write the cells a session executed, with their outputs, to an ``.ipynb`` file.

    Args:
        source: A session (its ``history`` is used) or the executed cells themselves.
        path: Where to write the notebook; parent directories are created.
        title: Optional Markdown heading for the first cell.

    Returns:
        The path written.
    """
    history = source.history if isinstance(source, E2BSandboxSession) else source
    notebook = to_notebook(history, title=title)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(target))  # type: ignore[no-untyped-call]
    return target
