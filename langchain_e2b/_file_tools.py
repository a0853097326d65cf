"""Sandbox file tools: read, write, edit and list files in the sandbox."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from langchain_e2b import _format
from langchain_e2b._tool_base import (
    Context,
    InjectedRuntime,
    SandboxTool,
    Steps,
    call,
    with_notices,
    write_error,
)
from langchain_e2b.errors import E2BFileError, E2BFileNotFoundError, E2BToolInputError

MAX_READ_BYTES = 5_000_000
MAX_LIST_ENTRIES = 500


def _output(context: Context, kind: str, text: str, **fields: Any) -> tuple[Any, dict[str, Any]]:
    """The tool's output: ``text`` with the call's notices, and its artifact of ``kind``."""
    artifact = {"kind": kind, **fields, "sandbox_id": context.session.sandbox_id}
    return with_notices(context.notices, text), artifact


class ReadFileInput(BaseModel):
    """Arguments of ``read_file``."""

    path: str = Field(description="File to read; relative paths start in the home directory.")
    start_line: int | None = Field(
        default=None, ge=1, description="First line to return (1-based). Omit to start at the top."
    )
    end_line: int | None = Field(
        default=None, ge=1, description="Last line to return (inclusive). Omit to read to the end."
    )
    runtime: InjectedRuntime = None


def _decode_text(data: bytes, path: str) -> str:
    if b"\0" in data[:8192]:
        raise _binary(path, len(data))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _binary(path, len(data)) from None


def _binary(path: str, size: int) -> E2BToolInputError:
    return E2BToolInputError(
        f"{path} is a binary file ({size} bytes) and cannot be shown as text. Inspect it with "
        "run_code (e.g. open(path, 'rb').read(200)) or run_command (e.g. `file` or `xxd | head`)."
    )


def _select_lines(
    text: str, path: str, start: int | None, end: int | None
) -> tuple[str, int, int, int]:
    """The requested line range, with a header when it is not the whole file."""
    lines = text.splitlines(keepends=True)
    total = len(lines)
    first = start or 1
    last = min(end or total, total)
    if start is not None and first > max(total, 1):
        raise E2BToolInputError(f"start_line {first} is past the end of {path} ({total} lines).")
    if end is not None and start is not None and end < start:
        raise E2BToolInputError(f"end_line {end} is before start_line {start}.")
    if first == 1 and last == total:
        return (text if text else f"{path} is empty."), first, last, total
    body = "".join(lines[first - 1 : last])
    return f"[{path}: lines {first}-{last} of {total}]\n{body}", first, last, total


class E2BReadFileTool(SandboxTool):
    """Read a text file from the E2B sandbox, optionally a range of lines."""

    name: str = "read_file"
    description: str = (
        "Read a text file from the sandbox. Use start_line/end_line for a part of a long file. "
        "Binary files are refused; inspect them with run_code instead."
    )
    args_schema: type[BaseModel] = ReadFileInput

    def _check(self, info: Any, path: str) -> None:
        if info.is_dir:
            raise E2BToolInputError(f"{path} is a directory; use list_files to see its contents.")
        if info.size > MAX_READ_BYTES:
            raise E2BToolInputError(
                f"{path} is {info.size} bytes, too large to read at once. Read parts of it with "
                "run_command (e.g. `head -n 100`, `sed -n '100,200p'` or `grep -n`)."
            )

    def _result(
        self,
        context: Context,
        path: str,
        data: bytes,
        start: int | None,
        end: int | None,
    ) -> tuple[Any, dict[str, Any]]:
        text, first, last, total = _select_lines(_decode_text(data, path), path, start, end)
        truncated = len(text) > context.max_output_chars
        if truncated:
            text = _format.truncate(
                text,
                context.max_output_chars,
                note="read smaller ranges with start_line and end_line to see the rest",
            )
        return _output(
            context,
            "file",
            text,
            path=path,
            size=len(data),
            start_line=first,
            end_line=last,
            total_lines=total,
            truncated=truncated,
        )

    def _steps(
        self,
        context: Context,
        /,
        *,
        path: str,
        start_line: int | None = None,
        end_line: int | None = None,
    ) -> Steps:
        session = context.session
        target = session.resolve_path(path)
        self._check((yield call(session.file_info, session.afile_info, target)), target)
        data = yield call(session.read_file, session.aread_file, target)
        return self._result(context, target, data, start_line, end_line)


class WriteFileInput(BaseModel):
    """Arguments of ``write_file``."""

    path: str = Field(description="File to write; parent directories are created.")
    content: str = Field(description="The complete new content of the file.")
    runtime: InjectedRuntime = None


class E2BWriteFileTool(SandboxTool):
    """Create or overwrite a text file in the E2B sandbox."""

    name: str = "write_file"
    description: str = (
        "Create or overwrite a text file in the sandbox with the given content. "
        "To change part of an existing file, use edit_file instead."
    )
    args_schema: type[BaseModel] = WriteFileInput

    @staticmethod
    def _result(context: Context, path: str, content: str) -> tuple[Any, dict[str, Any]]:
        lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
        text = f"Wrote {len(content)} characters ({lines} lines) to {path}."
        return _output(context, "file", text, path=path, chars=len(content))

    def _steps(self, context: Context, /, *, path: str, content: str) -> Steps:
        session = context.session
        target = session.resolve_path(path)
        try:
            written = yield call(session.write_file, session.awrite_file, target, content)
        except E2BFileNotFoundError:
            raise
        except E2BFileError as exc:
            raise write_error(exc, session) from exc
        return self._result(context, written, content)


class EditFileInput(BaseModel):
    """Arguments of ``edit_file``."""

    path: str = Field(description="File to edit.")
    old_text: str = Field(
        description=(
            "Exact text to replace, including whitespace and indentation. It must occur exactly "
            "once unless replace_all is true; include surrounding lines to make it unique."
        )
    )
    new_text: str = Field(description="Text to put in its place.")
    replace_all: bool = Field(default=False, description="Replace every occurrence.")
    runtime: InjectedRuntime = None


def apply_edit(text: str, path: str, old_text: str, new_text: str, replace_all: bool) -> str:
    """Replace ``old_text`` in ``text``; raise a model-readable error when that is not possible."""
    if not old_text:
        raise E2BToolInputError("old_text must not be empty; use write_file to create a file.")
    count = text.count(old_text)
    if count == 0:
        raise E2BToolInputError(
            f"old_text was not found in {path}. It must match the file exactly, including "
            "whitespace and indentation; read the file and copy the text from it."
        )
    if count > 1 and not replace_all:
        raise E2BToolInputError(
            f"old_text occurs {count} times in {path}. Include more surrounding lines so it "
            "matches exactly once, or set replace_all to true."
        )
    return text.replace(old_text, new_text) if replace_all else text.replace(old_text, new_text, 1)


class E2BEditFileTool(SandboxTool):
    """Replace an exact piece of text in a file in the E2B sandbox."""

    name: str = "edit_file"
    description: str = (
        "Edit a text file in the sandbox by replacing an exact piece of text (old_text) with "
        "new_text. old_text must match exactly once unless replace_all is true."
    )
    args_schema: type[BaseModel] = EditFileInput

    @staticmethod
    def _plan(
        data: bytes, path: str, old_text: str, new_text: str, replace_all: bool
    ) -> tuple[str, int, int]:
        text = _decode_text(data, path)
        updated = apply_edit(text, path, old_text, new_text, replace_all)
        count = text.count(old_text) if replace_all else 1
        line = text[: text.index(old_text)].count("\n") + 1
        return updated, count, line

    @staticmethod
    def _result(context: Context, path: str, count: int, line: int) -> tuple[Any, dict[str, Any]]:
        plural = "occurrence" if count == 1 else "occurrences"
        text = f"Replaced {count} {plural} in {path} (first at line {line})."
        return _output(context, "file", text, path=path, replacements=count, first_line=line)

    def _steps(
        self,
        context: Context,
        /,
        *,
        path: str,
        old_text: str,
        new_text: str,
        replace_all: bool = False,
    ) -> Steps:
        session = context.session
        target = session.resolve_path(path)
        data = yield call(session.read_file, session.aread_file, target)
        updated, count, line = self._plan(data, target, old_text, new_text, replace_all)
        try:
            yield call(session.write_file, session.awrite_file, target, updated)
        except E2BFileNotFoundError:
            raise
        except E2BFileError as exc:
            raise write_error(exc, session) from exc
        return self._result(context, target, count, line)


class ListFilesInput(BaseModel):
    """Arguments of ``list_files``."""

    path: str = Field(default=".", description="Directory to list. Omit for the home directory.")
    depth: int = Field(default=1, ge=1, le=5, description="How many levels deep to list.")
    runtime: InjectedRuntime = None


class E2BListFilesTool(SandboxTool):
    """List a directory in the E2B sandbox."""

    name: str = "list_files"
    description: str = (
        "List files and directories in the sandbox (directories end with '/'), with sizes."
    )
    args_schema: type[BaseModel] = ListFilesInput

    @staticmethod
    def _result(context: Context, path: str, entries: list[Any]) -> tuple[Any, dict[str, Any]]:
        prefix = path.rstrip("/") + "/"
        lines = []
        for entry in entries[:MAX_LIST_ENTRIES]:
            rel = entry.path[len(prefix) :] if entry.path.startswith(prefix) else entry.path
            lines.append(f"{rel}/" if entry.is_dir else f"{rel}  ({entry.size} bytes)")
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(
                f"[{len(entries) - MAX_LIST_ENTRIES} more entries not shown; list a subdirectory]"
            )
        body = "\n".join(lines) if lines else "(empty directory)"
        return _output(
            context,
            "listing",
            f"{path}:\n{body}",
            path=path,
            entries=[{"path": e.path, "is_dir": e.is_dir, "size": e.size} for e in entries],
        )

    def _steps(self, context: Context, /, *, path: str = ".", depth: int = 1) -> Steps:
        session = context.session
        target = session.resolve_path(path)
        entries = yield call(session.list_files, session.alist_files, target, depth=depth)
        return self._result(context, target, entries)


__all__ = [
    "MAX_LIST_ENTRIES",
    "MAX_READ_BYTES",
    "E2BEditFileTool",
    "E2BListFilesTool",
    "E2BReadFileTool",
    "E2BWriteFileTool",
    "apply_edit",
]
