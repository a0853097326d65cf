"""The history of what a session ran, kept within bounds, and its export as a Jupyter notebook.

A :class:`HistoryRecorder` keeps the latest cells and shell commands a session ran, dropping the
oldest past a count and a size, so a long-running agent does not grow without end. It belongs to
whoever created it: give the same recorder to several sessions (or to thread sessions through
their session options) and the history outlives every one of them, closed or cleaned up.
Exporting needs ``nbformat`` (the ``agents`` extra); recording does not.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from langchain_e2b._format import CodeResult, CommandResult

if TYPE_CHECKING:
    from nbformat import NotebookNode

DEFAULT_MAX_ENTRIES = 500
DEFAULT_MAX_BYTES = 16_000_000
"""Each session keeps its own recorder by default, so these bound every session's history."""

Entry = CodeResult | CommandResult


def _size(entry: Entry) -> int:
    """Approximate bytes held by one record (text and rich outputs, images included)."""
    size = len(entry.stdout) + len(entry.stderr)
    if isinstance(entry, CodeResult):
        size += len(entry.code)
        for result in entry.results:
            size += sum(len(v) if isinstance(v, str) else 64 for v in result["data"].values())
        if entry.error:
            size += sum(len(v) for v in entry.error.values())
    else:
        size += len(entry.command)
    return size


class HistoryRecorder:
    """The latest cells (and shell commands) run through one or more sessions, oldest first.

    Example:
        .. code-block:: python

            from langchain_e2b import E2BSandboxSession
            from langchain_e2b.notebook import HistoryRecorder

            recorder = HistoryRecorder(max_entries=200)
            with E2BSandboxSession(history=recorder) as session:
                session.run_code("x = 1")
                session.run_command("ls")
            recorder.export("run.ipynb", include_commands=True)  # works after close

    Args:
        max_entries: Most records kept; the oldest go first.
        max_bytes: Most text (and image data) kept over all records; the oldest go first. A single
            record larger than this is not kept.
    """

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be at least 1")
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._entries: deque[tuple[Entry, int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.dropped = 0
        """How many records were dropped to stay within the limits."""

    def record(self, entry: Entry) -> None:
        """Keep ``entry``, dropping the oldest records past the limits."""
        size = _size(entry)
        with self._lock:
            self._entries.append((entry, size))
            self._bytes += size
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, dropped_size = self._entries.popleft()
                self._bytes -= dropped_size
                self.dropped += 1

    @property
    def entries(self) -> list[Entry]:
        """Every kept record, cells and commands, oldest first (a copy)."""
        with self._lock:
            return [entry for entry, _ in self._entries]

    @property
    def cells(self) -> list[CodeResult]:
        """The kept ``run_code`` cells, oldest first (a copy)."""
        return [e for e in self.entries if isinstance(e, CodeResult)]

    @property
    def size(self) -> int:
        """Approximate bytes held."""
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def to_notebook(
        self, *, title: str | None = None, include_commands: bool = False
    ) -> NotebookNode:
        """The kept records as a notebook (see :func:`to_notebook`)."""
        return to_notebook(self.entries, title=title, include_commands=include_commands)

    def export(
        self, path: str | Path, *, title: str | None = None, include_commands: bool = False
    ) -> Path:
        """Write the kept records as an ``.ipynb`` file (see :func:`export_notebook`)."""
        return export_notebook(self.entries, path, title=title, include_commands=include_commands)


class _HasHistory(Protocol):
    @property
    def history_recorder(self) -> HistoryRecorder | None: ...


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


def _command_cell(entry: CommandResult) -> dict[str, Any]:
    command = entry.command.strip("\n")
    source = f"!{command}" if "\n" not in command else f"%%bash\n{command}"
    outputs: list[dict[str, Any]] = []
    if entry.stdout:
        outputs.append(_stream("stdout", entry.stdout))
    if entry.stderr:
        outputs.append(_stream("stderr", entry.stderr))
    if entry.timed_out:
        outputs.append(_stream("stderr", f"Command timed out after {entry.timeout} seconds.\n"))
    elif entry.pid is not None and entry.exit_code is None:
        outputs.append(_stream("stdout", f"[started in the background, pid {entry.pid}]\n"))
    elif entry.exit_code:
        outputs.append(_stream("stderr", f"[exit code {entry.exit_code}]\n"))
    return {
        "cell_type": "code",
        "metadata": {"langchain_e2b": {"kind": "command"}},
        "source": source,
        "execution_count": None,
        "outputs": outputs,
    }


def _markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def to_notebook(
    cells: Iterable[Entry], *, title: str | None = None, include_commands: bool = False
) -> NotebookNode:
    """Build a validated notebook from executed cells.

    A cell that followed a sandbox restart is preceded by a Markdown cell saying so, because the
    state it ran against is not the state the earlier cells built.

    Args:
        cells: Executed cells, oldest first (``E2BSandboxSession.history`` or
            ``HistoryRecorder.entries``).
        title: Optional Markdown heading for the first cell.
        include_commands: Also write shell commands, as ``!command`` cells (``%%bash`` for
            several lines); otherwise they are left out.

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
        if isinstance(cell, CommandResult) and not include_commands:
            continue
        if cell.sandbox_id and cell.sandbox_id not in sandbox_ids:
            sandbox_ids.append(cell.sandbox_id)
        if cell.notice:
            notebook_cells.append(_markdown(f"> {cell.notice}"))
        if isinstance(cell, CommandResult):
            notebook_cells.append(_command_cell(cell))
            continue
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
    import nbformat  # the agents extra; recording works without it

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
    source: _HasHistory | HistoryRecorder | Iterable[Entry],
    path: str | Path,
    *,
    title: str | None = None,
    include_commands: bool = False,
) -> Path:
    """Write the cells a session executed, with their outputs, to an ``.ipynb`` file.

    Args:
        source: A session (its history recorder is used; a closed session works too), a
            :class:`HistoryRecorder`, or the executed records themselves.
        path: Where to write the notebook; parent directories are created.
        title: Optional Markdown heading for the first cell.
        include_commands: Also write shell commands as ``!command`` cells.

    Returns:
        The path written.

    Raises:
        ValueError: If ``source`` is a session created with ``history=False``.
    """
    import nbformat

    if isinstance(source, HistoryRecorder):
        entries: Iterable[Entry] = source.entries
    elif hasattr(source, "history_recorder"):
        recorder = source.history_recorder
        if recorder is None:
            raise ValueError(
                "This session keeps no history (history=False); create it with history=True or "
                "history=HistoryRecorder() to export a notebook."
            )
        entries = recorder.entries
    else:
        entries = source
    notebook = to_notebook(entries, title=title, include_commands=include_commands)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(target))  # type: ignore[no-untyped-call]
    return target
