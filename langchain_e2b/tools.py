"""LangChain tools that run code, commands and file operations in an E2B sandbox."""

from __future__ import annotations

import contextvars
import logging
import re
import shlex
from collections.abc import Callable, Generator
from typing import Annotated, Any, Literal

from e2b import InvalidArgumentException, SandboxException, TimeoutException
from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolArg
from pydantic import BaseModel, ConfigDict, Field

from langchain_e2b import _call_order, _format
from langchain_e2b.errors import E2BToolInputError
from langchain_e2b.session import (
    CodeResult,
    CommandResult,
    E2BSandboxSession,
    SessionEvent,
    SessionProvider,
    collect_notices,
)

logger = logging.getLogger(__name__)

OUTPUT_EVENT = "e2b_output"
"""Custom event carrying ``{"stream", "text", "sandbox_id"}`` for each output chunk."""
SANDBOX_EVENT = "e2b_sandbox"
"""Custom event carrying ``{"event", "sandbox_id", "message"}`` for sandbox lifecycle changes."""

MAX_READ_BYTES = 5_000_000
MAX_COMMAND_BYTES = 100_000
"""Longest command accepted: Linux refuses one argument over 128 KiB, and bash gets the command
as one argument (a background command also carries a short wrapper)."""
MAX_LIST_ENTRIES = 500
INSTALL_TIMEOUT = 600


# --- callbacks -----------------------------------------------------------------------------------


def _langgraph_writer() -> Any:
    """LangGraph's stream writer inside a graph (``stream_mode="custom"``), else None."""
    try:
        from langgraph.config import get_stream_writer  # optional dependency

        return get_stream_writer()
    except (ImportError, RuntimeError, KeyError, AttributeError, TypeError):
        return None


class _Relay:
    """Forwards live output and lifecycle events of one tool call to LangChain callbacks."""

    def __init__(
        self,
        run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
        session: E2BSandboxSession,
    ) -> None:
        self.run_manager = run_manager
        self.session = session
        # Events are attached to this tool run, not to its parent.
        self.config: RunnableConfig | None = (
            {"callbacks": run_manager.get_child()} if run_manager is not None else None
        )
        self.writer = _langgraph_writer()

    def _output_data(self, stream: str, text: str) -> dict[str, Any]:
        return {"stream": stream, "text": text, "sandbox_id": self.session.sandbox_id}

    def _write(self, name: str, data: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer({"type": name, **data})

    def output(self, stream: str, text: str) -> None:
        data = self._output_data(stream, text)
        if isinstance(self.run_manager, CallbackManagerForToolRun):
            self.run_manager.on_text(text)
        if self.config is not None:
            dispatch_custom_event(OUTPUT_EVENT, data, config=self.config)
        self._write(OUTPUT_EVENT, data)

    async def aoutput(self, stream: str, text: str) -> None:
        data = self._output_data(stream, text)
        if isinstance(self.run_manager, AsyncCallbackManagerForToolRun):
            await self.run_manager.on_text(text)
        if self.config is not None:
            await adispatch_custom_event(OUTPUT_EVENT, data, config=self.config)
        self._write(OUTPUT_EVENT, data)

    def lifecycle(self, event: SessionEvent) -> None:
        if self.config is not None:
            dispatch_custom_event(SANDBOX_EVENT, event.to_dict(), config=self.config)
        self._write(SANDBOX_EVENT, event.to_dict())

    async def alifecycle(self, event: SessionEvent) -> None:
        if self.config is not None:
            await adispatch_custom_event(SANDBOX_EVENT, event.to_dict(), config=self.config)
        self._write(SANDBOX_EVENT, event.to_dict())


# The relay of the tool call running in this context: session events are raised in the context
# of the call that caused them, so each event reaches exactly that call's callbacks.
_CURRENT: contextvars.ContextVar[tuple[_Relay, bool] | None] = contextvars.ContextVar(
    "langchain_e2b_relay", default=None
)


def _forward_lifecycle(event: SessionEvent) -> Any:
    current = _CURRENT.get()
    if current is None:
        return None
    relay, is_async = current
    return relay.alifecycle(event) if is_async else relay.lifecycle(event)


InjectedRuntime = Annotated[Any, InjectedToolArg]
"""The ``ToolRuntime`` LangGraph's ``ToolNode`` injects into a field named ``runtime`` (the model
never sees it): its state tells a call its place among the message's parallel calls."""


# --- base -------------------------------------------------------------------------------------


class _E2BBaseTool(BaseTool):
    """Holds the session (or a provider of sessions) and does the callback plumbing."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    session: SessionProvider = Field(default_factory=E2BSandboxSession, exclude=True)
    """The sandbox session, or an object whose ``get(config)``/``aget(config)`` returns one."""

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: Any = True

    def _kwargs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.pop("runtime", None)  # used by invoke() for ordering, not by the steps
        # A plain string input arrives positionally: it is the first field of the schema.
        if args and isinstance(self.args_schema, type) and issubclass(self.args_schema, BaseModel):
            first = next(iter(self.args_schema.model_fields))
            kwargs = {first: args[0], **kwargs}
        return kwargs

    def _turn(self, value: Any, config: RunnableConfig | None) -> _call_order.Turn | None:
        """This call's place among the parallel calls of its message that share its sandbox."""
        if not (isinstance(value, dict) and value.get("type") == "tool_call"):
            return None
        runtime = (value.get("args") or {}).get("runtime")
        return _call_order.turn_for(self, runtime, value.get("id"), dict(config or {}))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the tool; a call made in parallel with others first waits for its turn."""
        turn = self._turn(input, config)
        if turn is None:
            return super().invoke(input, config, **kwargs)
        try:
            turn.wait()
            return super().invoke(input, config, **kwargs)
        finally:
            turn.done()

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async :meth:`invoke`."""
        turn = self._turn(input, config)
        if turn is None:
            return await super().ainvoke(input, config, **kwargs)
        try:
            await turn.await_turn()
            return await super().ainvoke(input, config, **kwargs)
        finally:
            turn.done()

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, Any]]:
        session = self.session.get(config)
        relay = _Relay(run_manager, session)
        session.add_listener(_forward_lifecycle)
        token = _CURRENT.set((relay, False))
        try:
            with collect_notices() as notices:
                steps = self._steps(session, notices, **self._kwargs(args, kwargs))
                try:
                    return _drive(steps, session, relay.output)
                except (FileNotFoundError, E2BToolInputError) as exc:
                    raise _for_model(exc, notices) from exc
        finally:
            _CURRENT.reset(token)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, Any]]:
        session = await self.session.aget(config)
        relay = _Relay(run_manager, session)
        session.add_listener(_forward_lifecycle)
        token = _CURRENT.set((relay, True))
        try:
            with collect_notices() as notices:
                steps = self._steps(session, notices, **self._kwargs(args, kwargs))
                try:
                    return await _adrive(steps, session, relay.aoutput)
                except (FileNotFoundError, E2BToolInputError) as exc:
                    raise _for_model(exc, notices) from exc
        finally:
            _CURRENT.reset(token)

    def _steps(self, *args: Any, **kwargs: Any) -> _Steps:
        """The tool's work, called as ``_steps(session, notices, **tool_arguments)``.

        It yields the session calls it needs and returns the tool output. ``_run`` and ``_arun``
        drive the same generator, sending back each call's result (or throwing its exception),
        so every tool is written once for both.
        """
        raise NotImplementedError


class _Op:
    """One session call a tool step asks for: ``session.<method>`` or ``session.a<method>``."""

    def __init__(self, method: str, *args: Any, stream: bool = False, **kwargs: Any) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.stream = stream

    def options(self, on_output: Callable[[str, str], Any]) -> dict[str, Any]:
        return {**self.kwargs, "on_output": on_output} if self.stream else self.kwargs


_Steps = Generator[_Op, Any, tuple[Any, dict[str, Any]]]


def _drive(
    steps: _Steps, session: E2BSandboxSession, on_output: Callable[[str, str], Any]
) -> tuple[Any, dict[str, Any]]:
    """Run a tool's steps with the session's synchronous methods."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            op = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            value, error = getattr(session, op.method)(*op.args, **op.options(on_output)), None
        except Exception as exc:
            value, error = None, exc


async def _adrive(
    steps: _Steps, session: E2BSandboxSession, on_output: Callable[[str, str], Any]
) -> tuple[Any, dict[str, Any]]:
    """Run a tool's steps with the session's asynchronous methods (``a`` + the method name)."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            op = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            method = getattr(session, "a" + op.method)
            value, error = await method(*op.args, **op.options(on_output)), None
        except Exception as exc:
            value, error = None, exc


def _for_model(exc: FileNotFoundError | E2BToolInputError, notices: list[str]) -> E2BToolInputError:
    """The error message the model reads, after the call's notices (a restart explains a loss)."""
    if isinstance(exc, FileNotFoundError):
        message = (
            f"No such file or directory in the sandbox: {exc.args[0] if exc.args else exc}. "
            "Use list_files to see what exists."
        )
    else:
        message = str(exc)
    return E2BToolInputError(_with_notices(notices, message))


def _file_error(action: str, path: str, exc: SandboxException) -> E2BToolInputError:
    return E2BToolInputError(f"Could not {action} {path}: {exc}")


def _with_notices(notices: list[str], text: str) -> str:
    return "\n".join([*notices, text]) if notices else text


def _package(
    session: E2BSandboxSession, record: CodeResult | CommandResult, rendered: _format.Rendered
) -> _Steps:
    """Truncate the text if needed (saving the full text in the sandbox) and build the output."""
    text = rendered.text
    truncated = len(text) > session.max_output_chars
    saved: str | None = None
    if truncated:
        try:
            saved = yield _Op("save_output", text)
        except Exception:  # best effort: the truncated output still reaches the model, and says so
            logger.warning("could not save the full output in the sandbox", exc_info=True)
        text = _format.truncate(text, session.max_output_chars, note=_format.saved_note(saved))
    content = _format.content(text, rendered.images)
    return content, _format.artifact(record, truncated=truncated, full_output_path=saved)


# --- run_code ----------------------------------------------------------------------------------


class RunCodeInput(BaseModel):
    """Arguments of ``run_code``."""

    code: str = Field(
        description=(
            "The code to run. It runs in a persistent Jupyter kernel: variables, imports and "
            "functions from earlier calls are still defined. The value of the last line is shown "
            "as Out[n]; matplotlib charts (plt.show()) come back as images."
        )
    )
    language: str | None = Field(
        default=None,
        description="Kernel language. Omit for Python; use another only if the sandbox has it.",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Seconds before the run is interrupted. Omit for the default.",
    )
    runtime: InjectedRuntime = None


class E2BCodeInterpreterTool(_E2BBaseTool):
    """Run code in a stateful Jupyter kernel inside an E2B sandbox.

    Setup:
        Install ``langchain-e2b``. Set ``E2B_API_KEY`` to use the E2B cloud; without it the
        embedded local runtime (``langchain-e2b[local]``) is used.

    Instantiate:
        .. code-block:: python

            from langchain_e2b import E2BCodeInterpreterTool, E2BSandboxSession

            tool = E2BCodeInterpreterTool(session=E2BSandboxSession())

    Invoke:
        .. code-block:: python

            tool.invoke({"code": "x = 21"})
            tool.invoke({"code": "x * 2"})  # 'Out[2]: 42'

    The text for the model holds stdout, stderr, the cell's value and any error (name, value,
    trimmed traceback); images come as image content blocks; the artifact is the full record.
    """

    name: str = "run_code"
    description: str = (
        "Run Python code in a persistent Jupyter kernel inside a sandbox and return its output. "
        "State (variables, imports, files) is kept between calls, so build on earlier results. "
        "Use print() or a final expression to see values."
    )
    args_schema: type[BaseModel] = RunCodeInput

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        code: str,
        language: str | None = None,
        timeout: float | None = None,
    ) -> _Steps:
        try:
            result = yield _Op("run_code", code, language=language, timeout=timeout, stream=True)
        except (InvalidArgumentException, SandboxException) as exc:
            if language is None or isinstance(exc, TimeoutException):
                raise
            raise _language_error(language, exc) from exc
        rendered = _format.render_code(result, include_images=session.include_images)
        return (yield from _package(session, result, rendered))


def _language_error(language: str, exc: Exception) -> E2BToolInputError:
    # Only a requested language can be the model's mistake; anything else is a backend failure.
    return E2BToolInputError(
        f"Could not run code as {language!r}: {exc}. Omit `language` to run Python."
    )


# --- run_command -------------------------------------------------------------------------------


class RunCommandInput(BaseModel):
    """Arguments of ``run_command``."""

    command: str = Field(description="The shell command to run with bash, e.g. `ls -la`.")
    cwd: str | None = Field(
        default=None, description="Working directory. Omit for the home directory."
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Seconds before the command is killed. Omit for the default.",
    )
    background: bool = Field(
        default=False,
        description=(
            "Start the command and return at once with its pid, for servers and long jobs. Its "
            "output is written to a log file whose path is returned."
        ),
    )
    runtime: InjectedRuntime = None


class E2BShellTool(_E2BBaseTool):
    """Run a shell command in the E2B sandbox; the exit code is part of the text.

    Invoke:
        .. code-block:: python

            tool = E2BShellTool(session=session)
            tool.invoke({"command": "python --version"})
    """

    name: str = "run_command"
    description: str = (
        "Run a bash command in the sandbox and return its stdout, stderr and exit code. "
        "Files and installed programs persist between calls. Use background=true for servers."
    )
    args_schema: type[BaseModel] = RunCommandInput

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        command: str,
        cwd: str | None = None,
        timeout: float | None = None,
        background: bool = False,
    ) -> _Steps:
        _require(command.strip(), "command must not be empty.")
        size = len(command.encode("utf-8", errors="surrogatepass"))
        if size > MAX_COMMAND_BYTES:
            raise _command_too_long(
                f"The command is {size} bytes, more than the {MAX_COMMAND_BYTES} a command may have"
            )
        try:
            result = yield _Op(
                "run_command", command, cwd=cwd, timeout=timeout, background=background, stream=True
            )
        except InvalidArgumentException as exc:
            raise _command_error(session, cwd, exc) from exc
        rendered = _format.Rendered(_format.render_command(result))
        return (yield from _package(session, result, rendered))


def _command_too_long(why: str) -> E2BToolInputError:
    return E2BToolInputError(
        f"{why}. Write the script or data to a file with write_file and run that file instead "
        "(e.g. `bash /tmp/script.sh`)."
    )


def _command_error(
    session: E2BSandboxSession, cwd: str | None, exc: InvalidArgumentException
) -> E2BToolInputError:
    """The model-readable reason the sandbox refused to start the command."""
    reason = str(exc)
    if "cwd" in reason.lower():
        workdir = session.resolve_path(cwd) if cwd else session.cwd
        return E2BToolInputError(
            f"The working directory {workdir} does not exist in the sandbox (or is not a "
            f"directory). Create it first (e.g. run_command `mkdir -p {shlex.quote(workdir)}`) "
            "or use another cwd."
        )
    if "argument list too long" in reason.lower():
        return _command_too_long(f"The command is too long for the sandbox to start ({reason})")
    return E2BToolInputError(f"The sandbox could not start the command: {reason}")


def _require(condition: object, message: str) -> None:
    if not condition:
        raise E2BToolInputError(message)


# --- files -------------------------------------------------------------------------------------


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


class E2BReadFileTool(_E2BBaseTool):
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
        session: E2BSandboxSession,
        notices: list[str],
        path: str,
        data: bytes,
        start: int | None,
        end: int | None,
    ) -> tuple[Any, dict[str, Any]]:
        text, first, last, total = _select_lines(_decode_text(data, path), path, start, end)
        truncated = len(text) > session.max_output_chars
        if truncated:
            text = _format.truncate(
                text,
                session.max_output_chars,
                note="read smaller ranges with start_line and end_line to see the rest",
            )
        artifact = {
            "kind": "file",
            "path": path,
            "size": len(data),
            "start_line": first,
            "end_line": last,
            "total_lines": total,
            "truncated": truncated,
            "sandbox_id": session.sandbox_id,
        }
        return _with_notices(notices, text), artifact

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        path: str,
        start_line: int | None = None,
        end_line: int | None = None,
    ) -> _Steps:
        target = session.resolve_path(path)
        try:
            self._check((yield _Op("file_info", target)), target)
            data = yield _Op("read_file", target)
        except (InvalidArgumentException, SandboxException) as exc:
            raise _file_error("read", target, exc) from exc
        return self._result(session, notices, target, data, start_line, end_line)


class WriteFileInput(BaseModel):
    """Arguments of ``write_file``."""

    path: str = Field(description="File to write; parent directories are created.")
    content: str = Field(description="The complete new content of the file.")
    runtime: InjectedRuntime = None


class E2BWriteFileTool(_E2BBaseTool):
    """Create or overwrite a text file in the E2B sandbox."""

    name: str = "write_file"
    description: str = (
        "Create or overwrite a text file in the sandbox with the given content. "
        "To change part of an existing file, use edit_file instead."
    )
    args_schema: type[BaseModel] = WriteFileInput

    @staticmethod
    def _result(
        session: E2BSandboxSession, notices: list[str], path: str, content: str
    ) -> tuple[Any, dict[str, Any]]:
        lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
        text = f"Wrote {len(content)} characters ({lines} lines) to {path}."
        artifact = {
            "kind": "file",
            "path": path,
            "chars": len(content),
            "sandbox_id": session.sandbox_id,
        }
        return _with_notices(notices, text), artifact

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        path: str,
        content: str,
    ) -> _Steps:
        target = session.resolve_path(path)
        try:
            written = yield _Op("write_file", target, content)
        except (InvalidArgumentException, SandboxException) as exc:
            raise _file_error("write", target, exc) from exc
        return self._result(session, notices, written, content)


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


class E2BEditFileTool(_E2BBaseTool):
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
    def _result(
        session: E2BSandboxSession, notices: list[str], path: str, count: int, line: int
    ) -> tuple[Any, dict[str, Any]]:
        plural = "occurrence" if count == 1 else "occurrences"
        text = f"Replaced {count} {plural} in {path} (first at line {line})."
        artifact = {
            "kind": "file",
            "path": path,
            "replacements": count,
            "first_line": line,
            "sandbox_id": session.sandbox_id,
        }
        return _with_notices(notices, text), artifact

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        path: str,
        old_text: str,
        new_text: str,
        replace_all: bool = False,
    ) -> _Steps:
        target = session.resolve_path(path)
        try:
            data = yield _Op("read_file", target)
            updated, count, line = self._plan(data, target, old_text, new_text, replace_all)
            yield _Op("write_file", target, updated)
        except (InvalidArgumentException, SandboxException) as exc:
            raise _file_error("edit", target, exc) from exc
        return self._result(session, notices, target, count, line)


class ListFilesInput(BaseModel):
    """Arguments of ``list_files``."""

    path: str = Field(default=".", description="Directory to list. Omit for the home directory.")
    depth: int = Field(default=1, ge=1, le=5, description="How many levels deep to list.")
    runtime: InjectedRuntime = None


class E2BListFilesTool(_E2BBaseTool):
    """List a directory in the E2B sandbox."""

    name: str = "list_files"
    description: str = (
        "List files and directories in the sandbox (directories end with '/'), with sizes."
    )
    args_schema: type[BaseModel] = ListFilesInput

    @staticmethod
    def _result(
        session: E2BSandboxSession, notices: list[str], path: str, entries: list[Any]
    ) -> tuple[Any, dict[str, Any]]:
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
        artifact = {
            "kind": "listing",
            "path": path,
            "entries": [{"path": e.path, "is_dir": e.is_dir, "size": e.size} for e in entries],
            "sandbox_id": session.sandbox_id,
        }
        return _with_notices(notices, f"{path}:\n{body}"), artifact

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        path: str = ".",
        depth: int = 1,
    ) -> _Steps:
        target = session.resolve_path(path)
        try:
            entries = yield _Op("list_files", target, depth=depth)
        except (InvalidArgumentException, SandboxException) as exc:
            raise _file_error("list", target, exc) from exc
        return self._result(session, notices, target, entries)


# --- install_packages ---------------------------------------------------------------------------

_PIP_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIP_EXTRAS = r"(?:\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?"
_PIP_CLAUSE = r"(?:===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_PIP_SPEC = re.compile(
    rf"^{_PIP_NAME}\s*{_PIP_EXTRAS}\s*(?:{_PIP_CLAUSE}(?:\s*,\s*{_PIP_CLAUSE})*)?$"
)
_NPM_SPEC = re.compile(
    r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=*_+-]+)?$"
)


def validate_package_spec(spec: str, manager: Literal["pip", "npm"]) -> str:
    """Return the spec stripped, or raise a model-readable error if it is not a plain package spec.

    Only names with optional extras and version constraints pass, so no URL, path, option or
    shell syntax can reach the install command.
    """
    value = spec.strip()
    pattern = _PIP_SPEC if manager == "pip" else _NPM_SPEC
    if not pattern.fullmatch(value):
        example = "'pandas' or 'numpy>=1.26'" if manager == "pip" else "'lodash' or 'zod@3'"
        raise E2BToolInputError(
            f"{spec!r} is not a valid {manager} package spec. Use a package name with an optional "
            f"version, like {example}; URLs, paths and options are not allowed."
        )
    return value


def install_command(packages: list[str], manager: Literal["pip", "npm"]) -> str:
    """The shell command that installs ``packages`` (validated and quoted)."""
    if not packages:
        raise E2BToolInputError("packages must list at least one package.")
    specs = " ".join(shlex.quote(validate_package_spec(p, manager)) for p in packages)
    if manager == "pip":
        return f"python3 -m pip install --disable-pip-version-check --no-input --quiet {specs}"
    return f"npm install --no-fund --no-audit --loglevel=error {specs}"


class InstallPackagesInput(BaseModel):
    """Arguments of ``install_packages``."""

    packages: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Package specs, e.g. ['pandas', 'scikit-learn>=1.4'].",
    )
    manager: Literal["pip", "npm"] = Field(
        default="pip", description="'pip' for Python packages, 'npm' for JavaScript packages."
    )
    runtime: InjectedRuntime = None


class E2BInstallPackagesTool(_E2BBaseTool):
    """Install pip (or npm) packages into the E2B sandbox."""

    name: str = "install_packages"
    description: str = (
        "Install Python packages with pip (or JavaScript packages with npm) in the sandbox, so "
        "run_code can import them. Give package names with optional versions only."
    )
    args_schema: type[BaseModel] = InstallPackagesInput

    @staticmethod
    def _timeout(session: E2BSandboxSession) -> float:
        return max(session.timeout, INSTALL_TIMEOUT)

    @staticmethod
    def _rendered(result: CommandResult, packages: list[str]) -> _format.Rendered:
        text = _format.render_command(result)
        if result.exit_code == 0:
            text += f"\nInstalled: {', '.join(p.strip() for p in packages)}."
        return _format.Rendered(text)

    def _steps(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        *,
        packages: list[str],
        manager: Literal["pip", "npm"] = "pip",
    ) -> _Steps:
        command = install_command(packages, manager)
        result = yield _Op("run_command", command, timeout=self._timeout(session), stream=True)
        return (yield from _package(session, result, self._rendered(result, packages)))


TOOL_CLASSES: dict[str, Callable[..., BaseTool]] = {
    "run_code": E2BCodeInterpreterTool,
    "run_command": E2BShellTool,
    "read_file": E2BReadFileTool,
    "write_file": E2BWriteFileTool,
    "edit_file": E2BEditFileTool,
    "list_files": E2BListFilesTool,
    "install_packages": E2BInstallPackagesTool,
}
"""Tool name the model sees -> tool class."""

__all__ = [
    "OUTPUT_EVENT",
    "SANDBOX_EVENT",
    "TOOL_CLASSES",
    "E2BCodeInterpreterTool",
    "E2BEditFileTool",
    "E2BInstallPackagesTool",
    "E2BListFilesTool",
    "E2BReadFileTool",
    "E2BShellTool",
    "E2BWriteFileTool",
]
