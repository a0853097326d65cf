"""I/O-free core: SDK results to records, and records to model content and artifacts."""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# Images larger than this (decoded) stay in the artifact only: providers reject big images and
# each one costs the model a lot of context.
MAX_IMAGE_BYTES = 1_000_000
MAX_IMAGES = 4
TRACEBACK_LINES = 25

# SDK result attribute -> MIME type, in the order a notebook front end prefers them.
_MIME_ATTRS: tuple[tuple[str, str], ...] = (
    ("text", "text/plain"),
    ("html", "text/html"),
    ("markdown", "text/markdown"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpeg", "image/jpeg"),
    ("pdf", "application/pdf"),
    ("latex", "text/latex"),
    ("json", "application/json"),
    ("javascript", "application/javascript"),
    ("data", "e2b/data"),
)
_IMAGE_MIMES = ("image/png", "image/jpeg")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass
class CodeResult:
    """One executed ``run_code`` cell: what ran and everything it produced.

    Attributes:
        code: The source that was executed.
        language: The language requested, or ``None`` for the default Python context.
        stdout: Everything the cell printed to standard output.
        stderr: Everything the cell printed to standard error.
        results: Rich outputs in order, each ``{"data": {mime: value}, "is_main_result": bool}``;
            binary MIME data (PNG, JPEG, PDF) is base64 text, as in a Jupyter notebook.
        error: ``{"name", "value", "traceback"}`` if the cell raised, else ``None``.
        execution_count: The kernel's execution counter for this cell, when known.
        sandbox_id: The sandbox the cell ran in.
        timed_out: Whether the cell was interrupted because it ran past its timeout.
        timeout: The timeout in seconds that applied to the cell (``None`` for no limit).
        notice: A sentence the model must read first (for example, that the sandbox was restarted).
        output_omitted: Characters of stdout and stderr not kept by the caller (the middle of a
            very long output, replaced by a marker line that says so); 0 when all was kept.
        kernel_restarted: Whether a timed-out cell ignored the interrupt, so that its kernel was
            restarted and every variable of earlier cells is gone.
    """

    code: str
    language: str | None = None
    stdout: str = ""
    stderr: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    execution_count: int | None = None
    sandbox_id: str | None = None
    timed_out: bool = False
    timeout: float | None = None
    notice: str | None = None
    output_omitted: int = 0
    kernel_restarted: bool = False

    @property
    def text(self) -> str | None:
        """The plain-text form of the cell's main result (its ``Out[n]`` value), if any."""
        for result in self.results:
            if result.get("is_main_result"):
                value = result["data"].get("text/plain")
                return value if isinstance(value, str) else None
        return None

    def render(self, *, include_images: bool = False) -> str:
        """The text a model (or a person) should read for this cell, the notice first.

        Use this in custom graph nodes: a restart notice is never lost at the head of the text.
        """
        return render_code(self, include_images=include_images).text

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable copy of the record."""
        return asdict(self)


@dataclass
class CommandResult:
    """One shell command run by ``run_command``.

    Attributes:
        command: The command line as given.
        stdout: Standard output (empty for a background command).
        stderr: Standard error (empty for a background command).
        exit_code: The exit code, or ``None`` if the command timed out or runs in the background.
        error: An error reported by the sandbox for the process itself, if any.
        sandbox_id: The sandbox the command ran in.
        timed_out: Whether the command was killed because it ran past its timeout.
        timeout: The timeout in seconds that applied (``None`` for no limit).
        pid: The process id of a background command.
        log_path: Where a background command's stdout and stderr are written inside the sandbox.
        notice: A sentence the model must read first (for example, that the sandbox was restarted).
        output_omitted: Characters of stdout and stderr not kept by the caller (the middle of a
            very long output, replaced by a marker line that says so); 0 when all was kept.
    """

    command: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    error: str | None = None
    sandbox_id: str | None = None
    timed_out: bool = False
    timeout: float | None = None
    pid: int | None = None
    log_path: str | None = None
    notice: str | None = None
    output_omitted: int = 0

    def render(self) -> str:
        """The text a model (or a person) should read for this command, the notice first."""
        return render_command(self)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable copy of the record."""
        return asdict(self)


@dataclass
class Rendered:
    """Model-facing text before truncation, plus image blocks and notes about dropped images."""

    text: str
    images: list[dict[str, Any]] = field(default_factory=list)


class OutputCapture:
    """The head and the tail of a stream of text within ``limit`` characters.

    Whatever a sandbox prints, the caller keeps at most this much of it while it streams: the
    first two fifths of the budget, and the latest three fifths (errors usually come last). The
    middle is only counted.
    """

    def __init__(self, limit: int) -> None:
        self.head_limit = limit * 2 // 5
        self.tail_limit = limit - self.head_limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.omitted = 0
        """Characters dropped from the middle."""

    def add(self, text: str) -> None:
        """Take the next chunk of the stream."""
        room = self.head_limit - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if not text:
            return
        if len(text) >= self.tail_limit:
            # The chunk alone fills the tail: copy only its end (a chunk can be a megabyte, and
            # this runs for every one while a sandbox prints).
            self.omitted += self._tail_len + len(text) - self.tail_limit
            self._tail.clear()
            self._tail.append(text[len(text) - self.tail_limit :])
            self._tail_len = self.tail_limit
            return
        self._tail.append(text)
        self._tail_len += len(text)
        while self._tail_len > self.tail_limit:
            excess = self._tail_len - self.tail_limit
            first = self._tail[0]
            if len(first) <= excess:
                self._tail.popleft()
                dropped = len(first)
            else:
                self._tail[0] = first[excess:]
                dropped = excess
            self._tail_len -= dropped
            self.omitted += dropped

    def head(self) -> str:
        """The kept head."""
        return "".join(self._head)

    def tail(self) -> str:
        """The kept tail."""
        return "".join(self._tail)

    def text(self, note: str = "") -> str:
        """What was kept, with one marker line where the middle was dropped."""
        head, tail = self.head(), self.tail()
        if not self.omitted:
            return head + tail
        where = f"; {note}" if note else ""
        marker = f"[... {self.omitted} characters of output not kept here{where} ...]"
        return f"{head.rstrip(chr(10))}\n{marker}\n{tail.lstrip(chr(10))}"


# --- SDK objects -> records -------------------------------------------------------------------


def mime_bundle(result: Any) -> dict[str, Any]:
    """Turn an SDK ``Result`` into a ``{mime_type: value}`` dict that survives ``json.dumps``."""
    data: dict[str, Any] = {}
    for attr, mime in _MIME_ATTRS:
        value = getattr(result, attr, None)
        if value is not None and value != "":
            data[mime] = value
    chart = getattr(result, "chart", None)
    if chart is not None:
        to_dict = getattr(chart, "to_dict", None)
        data["e2b/chart"] = to_dict() if callable(to_dict) else chart
    extra = getattr(result, "extra", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            data.setdefault(str(key), value)
    return data


def error_dict(error: Any) -> dict[str, str] | None:
    """Turn an SDK ``ExecutionError`` into ``{"name", "value", "traceback"}``."""
    if error is None:
        return None
    return {
        "name": str(getattr(error, "name", "") or "Error"),
        "value": str(getattr(error, "value", "") or ""),
        "traceback": str(getattr(error, "traceback", "") or ""),
    }


def code_result(
    execution: Any,
    *,
    code: str,
    language: str | None,
    sandbox_id: str | None,
    timeout: float | None,
) -> CodeResult:
    """Build a :class:`CodeResult` from an SDK ``Execution``."""
    logs = execution.logs
    return CodeResult(
        code=code,
        language=language,
        stdout="".join(logs.stdout),
        stderr="".join(logs.stderr),
        results=[
            {"data": mime_bundle(r), "is_main_result": bool(getattr(r, "is_main_result", False))}
            for r in execution.results
        ],
        error=error_dict(execution.error),
        execution_count=execution.execution_count,
        sandbox_id=sandbox_id,
        timeout=timeout,
    )


# --- records -> model text ---------------------------------------------------------------------


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are full of them)."""
    return _ANSI.sub("", text)


def trim_traceback(traceback: str, max_lines: int = TRACEBACK_LINES) -> str:
    """Keep the last ``max_lines`` lines of a traceback, where the cause is, without colours."""
    lines = strip_ansi(traceback).strip("\n").splitlines()
    if len(lines) <= max_lines:
        return "\n".join(lines)
    omitted = len(lines) - max_lines
    return f"[{omitted} earlier traceback lines omitted]\n" + "\n".join(lines[-max_lines:])


def format_error(error: dict[str, str]) -> str:
    """Name, value and a trimmed traceback, ending with the ``Name: value`` line."""
    headline = f"{error['name']}: {error['value']}" if error["value"] else error["name"]
    traceback = trim_traceback(error["traceback"]) if error["traceback"] else ""
    if not traceback:
        return headline
    if headline not in traceback.splitlines()[-1]:
        traceback += "\n" + headline
    return traceback


def image_blocks(
    results: Sequence[dict[str, Any]],
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_images: int = MAX_IMAGES,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Standard LangChain image blocks for PNG/JPEG results, and a note per dropped image."""
    blocks: list[dict[str, Any]] = []
    notes: list[str] = []
    for result in results:
        for mime in _IMAGE_MIMES:
            data = result["data"].get(mime)
            if not isinstance(data, str):
                continue
            size = _decoded_size(data)
            if size is None:
                notes.append(f"An {mime} result was not valid base64 and was left out.")
            elif size > max_bytes:
                notes.append(
                    f"An {mime} image of {size // 1024} KB is over the {max_bytes // 1024} KB "
                    "limit and was left out; save a smaller figure to see it."
                )
            elif len(blocks) >= max_images:
                notes.append(f"An {mime} image was left out: at most {max_images} are shown.")
            else:
                blocks.append({"type": "image", "base64": data, "mime_type": mime})
            break  # one image per result: PNG if there is one, else JPEG
    return blocks, notes


def _decoded_size(data: str) -> int | None:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return None


def render_code(result: CodeResult, *, include_images: bool) -> Rendered:
    """The text (and image blocks) the model reads for one ``run_code`` call."""
    parts: list[str] = []
    if result.notice:
        parts.append(result.notice)
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    images: list[dict[str, Any]] = []
    if include_images:
        images, notes = image_blocks(result.results)
        parts.extend(notes)
    for item in result.results:
        data = item["data"]
        has_image = any(m in data for m in _IMAGE_MIMES)
        plain = data.get("text/plain")
        if item.get("is_main_result") and isinstance(plain, str):
            count = result.execution_count
            parts.append(f"Out[{count}]: {plain}" if count is not None else plain)
        elif has_image:
            label = "shown below" if include_images else "kept in the artifact"
            parts.append(f"[image output, {label}]")
        elif isinstance(plain, str):
            parts.append(plain)
        elif data:
            parts.append(f"[{', '.join(sorted(data))} output kept in the artifact]")
    if result.error:
        parts.append(format_error(result.error))
    if result.timed_out:
        parts.append(timeout_sentence(result))
    if len(parts) == (1 if result.notice else 0):
        parts.append("Code ran with no output.")
    return Rendered("\n".join(parts), images)


def timeout_sentence(result: CodeResult) -> str:
    """What the model must know about a cell that ran past its timeout."""
    after = _seconds(result.timeout)
    if result.kernel_restarted:
        return (
            f"Execution timed out after {after} and did not stop when interrupted, so the kernel "
            "was restarted: all variables, imports and other state from earlier cells are lost."
        )
    if result.language not in (None, "python"):
        return f"Execution timed out after {after} and was interrupted."
    return (
        f"Execution timed out after {after} and was interrupted; "
        "variables set before the interruption are kept."
    )


def render_command(result: CommandResult) -> str:
    """The text the model reads for one ``run_command`` call."""
    parts: list[str] = []
    if result.notice:
        parts.append(result.notice)
    if result.pid is not None and result.exit_code is None and not result.timed_out:
        parts.append(
            f"Started in the background with pid {result.pid}. Its output goes to "
            f"{result.log_path}; read that file to follow it, and `kill {result.pid}` stops it."
        )
        return "\n".join(parts)
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.error:
        parts.append(f"Error: {result.error}")
    if result.timed_out:
        parts.append(f"Command timed out after {_seconds(result.timeout)} and was killed.")
    else:
        parts.append(f"Exit code: {result.exit_code}")
    return "\n".join(parts)


def _seconds(value: float | None) -> str:
    if value is None:
        return "the time limit"
    return f"{value:g} second" + ("" if value == 1 else "s")


def truncate(text: str, limit: int, *, note: str) -> str:
    """Keep the head and the tail of ``text`` within about ``limit`` characters.

    The middle is replaced by one line that says how much was cut, followed by ``note`` (where
    to find the rest). Errors usually sit at the end, so the tail gets the larger share.
    """
    if len(text) <= limit:
        return text
    head_len = limit * 2 // 5
    tail_len = limit - head_len
    head, tail = text[:head_len], text[len(text) - tail_len :]
    # Cut at line boundaries when one is near, so no line is shown half.
    newline = head.rfind("\n")
    if newline > head_len // 2:
        head = head[: newline + 1]
    newline = tail.find("\n")
    if 0 <= newline < tail_len // 2:
        tail = tail[newline + 1 :]
    omitted = len(text) - len(head) - len(tail)
    marker = f"[... truncated: {omitted} of {len(text)} characters omitted; {note} ...]"
    return f"{head.rstrip(chr(10))}\n{marker}\n{tail.lstrip(chr(10))}"


def saved_note(path: str | None, *, not_kept: int = 0) -> str:
    """The truncation note for output whose text was (or could not be) saved in the sandbox.

    ``not_kept`` is how much of a very long output the caller never kept (see
    :class:`OutputCapture`): the saved file then holds the kept head and tail only, and the note
    says so rather than calling it the full output.
    """
    if not not_kept:
        if path is None:
            return "the full output could not be saved"
        return f"the full output is saved in the sandbox at {path}"
    rest = (
        f"{not_kept} characters in the middle were not kept; to see everything, redirect the "
        "output to a file in the sandbox and read it in parts"
    )
    if path is None:
        return rest
    return f"the kept head and tail are saved in the sandbox at {path}; {rest}"


def content(text: str, images: Iterable[dict[str, Any]]) -> str | list[str | dict[str, Any]]:
    """Tool message content: plain text, or a text block followed by image blocks."""
    blocks: list[str | dict[str, Any]] = [dict(block) for block in images]
    if not blocks:
        return text
    return [{"type": "text", "text": text}, *blocks]


def artifact(
    record: CodeResult | CommandResult,
    *,
    truncated: bool = False,
    full_output_path: str | None = None,
) -> dict[str, Any]:
    """The JSON-serialisable artifact attached to a ``ToolMessage``."""
    kind = "code" if isinstance(record, CodeResult) else "command"
    data: dict[str, Any] = {"kind": kind, **record.to_dict()}
    data["truncated"] = truncated
    data["full_output_path"] = full_output_path
    return data
