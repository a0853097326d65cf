"""Deep Agents on our sandboxes: backends, stateful ``run_code``, a ``deepagents-code`` provider.

:class:`E2BSandbox` and :class:`AsyncE2BSandbox` implement Deep Agents' sandbox backend protocol
(``deepagents.backends.sandbox.BaseSandbox``) over :class:`~langchain_e2b.E2BSandboxSession`, so a
deep agent's file and shell tools get what our tools get: lazy creation, the embedded local
runtime when there is no ``E2B_API_KEY``, keep-alive, a new sandbox (and a sentence saying so)
when the old one is gone, cleanup at exit, bounded output and live output events. Both classes
have native blocking and async methods; they differ only in which E2B SDK sandbox
``sandbox=`` takes, as in the other package published under this name, whose code runs unchanged.

:class:`E2BCodeMiddleware` adds our stateful ``run_code`` tool bound to the backend's sandbox;
the ``deepagents-code`` sandbox provider is :class:`langchain_e2b.provider.E2BProvider`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import shlex
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from deepagents.backends.protocol import (
    DeleteResult,
    ExecuteOffloadResult,
    ExecuteResponse,
    FileDownloadResponse,
    FileUploadResponse,
)
from deepagents.backends.sandbox import BaseSandbox
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool

from langchain_e2b import _format
from langchain_e2b._tool_base import Call, adrive, call, drive
from langchain_e2b.errors import (
    E2BConfigError,
    E2BFileError,
    E2BFileNotFoundError,
    E2BInvalidArgumentError,
)
from langchain_e2b.session import CommandResult, E2BSandboxSession, SessionProvider
from langchain_e2b.threads import E2BThreadSessions
from langchain_e2b.toolkit import E2BSandboxToolkit
from langchain_e2b.tools import OUTPUT_EVENT

if TYPE_CHECKING:
    from deepagents.backends.protocol import FileOperationError

DEFAULT_WORKDIR = "/home/user"
"""Working directory of ``execute`` (the E2B templates' home directory)."""
DEFAULT_TIMEOUT = 30 * 60
"""Seconds an ``execute`` call may run when no timeout is given (the other package's default)."""
NO_LIMIT_TIMEOUT = 60 * 60
"""What ``timeout=0`` ("no limit") means: an hour, the longest lifetime every E2B plan allows."""
DEFAULT_MAX_OUTPUT_CHARS = 2_000_000
"""Most characters of output ``execute`` returns; the rest is saved in the sandbox.

Large on purpose: Deep Agents reads files through ``execute`` (up to 500 KiB of JSON-escaped text
per page) and its middleware offloads large results before they reach the model."""
_MIN_INLINE_CHARS = 1000
TIMEOUT_EXIT_CODE = 124
"""Exit code of a command stopped by its timeout (as ``timeout(1)`` reports it)."""

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("langchain_e2b_quiet", default=False)
"""Set while a file operation runs its helper commands, whose output is no one's live output."""

_OutputCallback = Callable[[str, str], None]
_AsyncOutputCallback = Callable[[str, str], Awaitable[None]]


def _quiet(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with the live output of its helper commands switched off."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def aquiet(*args: Any, **kwargs: Any) -> Any:
            token = _QUIET.set(True)
            try:
                return await method(*args, **kwargs)
            finally:
                _QUIET.reset(token)

        return aquiet

    @functools.wraps(method)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        token = _QUIET.set(True)
        try:
            return method(*args, **kwargs)
        finally:
            _QUIET.reset(token)

    return quiet


class _SessionSandbox(BaseSandbox):
    """The Deep Agents sandbox protocol over a session, or over a provider of one per thread."""

    # execute_with_offload is ours (see there), so Deep Agents' middleware may always use it.
    enable_capture_offload: bool = True

    def __init__(
        self,
        *,
        sandbox: Any = None,
        session: E2BSandboxSession | SessionProvider | None = None,
        workdir: str = DEFAULT_WORKDIR,
        timeout: int = DEFAULT_TIMEOUT,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        sandbox_timeout: int = 300,
        **session_options: Any,
    ) -> None:
        if sandbox is not None and session is not None:
            raise E2BConfigError("Pass either sandbox=... or session=..., not both.")
        if session is not None and session_options:
            raise E2BConfigError(
                "Session options go to the session you pass, not to the backend: "
                f"remove {', '.join(sorted(session_options))} or pass them to the session."
            )
        if timeout < 0:
            raise E2BConfigError(f"timeout must be a non-negative number of seconds, got {timeout}")
        if max_output_chars < 1000:
            raise E2BConfigError(f"max_output_chars must be at least 1000, got {max_output_chars}")
        self._workdir = workdir
        self._default_timeout = timeout
        self._max_output_chars = int(max_output_chars)
        # Sessions we create keep more than we return, so that a truncation can save the rest
        # (execute_with_offload returns much less than max_output_chars).
        capture = 2 * max(self._max_output_chars, DEFAULT_MAX_OUTPUT_CHARS)
        options = {"cwd": workdir, "capture_chars": capture, **session_options}
        self._owned = session is None
        self._sessions: E2BSandboxSession | SessionProvider
        if sandbox is not None:
            self._sessions = _attach(sandbox, sandbox_timeout=sandbox_timeout, **options)
        elif session is not None:
            self._sessions = session
        else:
            # One sandbox per LangGraph thread inside a graph; one shared sandbox outside.
            self._sessions = E2BThreadSessions(idle_timeout=sandbox_timeout, **options)

    # --- the session of this call ----------------------------------------------------------

    @property
    def sessions(self) -> E2BSandboxSession | SessionProvider:
        """The session, or the provider of one per thread, that this backend runs on.

        Give it to our tools (``E2BSandboxToolkit(session=backend.sessions)``) to bind them to the
        same sandbox as the backend's file and shell tools.
        """
        return self._sessions

    def _session(self) -> E2BSandboxSession:
        return self._sessions.get(var_child_runnable_config.get())

    async def _asession(self) -> E2BSandboxSession:
        return await self._sessions.aget(var_child_runnable_config.get())

    @property
    def id(self) -> str:
        """The sandbox id (the sandbox is created or connected to first if needed)."""
        session = self._session()
        return session.sandbox_id or session.ensure_sandbox().sandbox_id

    # --- execute ---------------------------------------------------------------------------

    def _limit(self, timeout: int | None) -> int:
        limit = self._default_timeout if timeout is None else timeout
        if limit < 0:
            raise ValueError(f"timeout must be non-negative, got {limit}")
        return limit or NO_LIMIT_TIMEOUT

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """Run a shell command in the sandbox's working directory.

        Args:
            command: The command line (run with ``bash -l -c``).
            timeout: Seconds before the command is killed (exit code 124); ``None`` for the
                backend's default, ``0`` for :data:`NO_LIMIT_TIMEOUT`.

        Returns:
            The combined output, the exit code and whether output was left out.

        Raises:
            ValueError: ``timeout`` is negative.
        """
        return self._execute(command, timeout, self._max_output_chars)

    async def aexecute(
        self,
        command: str,
        *,
        timeout: int | None = None,  # the command's limit, passed to the sandbox
    ) -> ExecuteResponse:
        """Async :meth:`execute`."""
        return await self._aexecute(command, timeout, self._max_output_chars)

    def execute_with_offload(
        self,
        command: str,
        capture_path: str,
        *,
        max_inline_bytes: int,
        max_capture_bytes: int | None = None,
        timeout: int | None = None,
    ) -> ExecuteOffloadResult:
        """Run ``command``; output beyond ``max_inline_bytes`` stays in a file in the sandbox.

        The text returned keeps the head and the tail of the output and says in which sandbox
        file the full output is (under ``/tmp/langchain_e2b``: ``capture_path`` lies under ``/``,
        which sandbox users cannot write), so the model can read the rest. Live output still
        streams. ``max_capture_bytes`` is not used: the session's ``capture_chars`` bounds what
        is kept.
        """
        limit = max(min(self._max_output_chars, max_inline_bytes), _MIN_INLINE_CHARS)
        return ExecuteOffloadResult(
            offloaded=False, response=self._execute(command, timeout, limit)
        )

    async def aexecute_with_offload(
        self,
        command: str,
        capture_path: str,
        *,
        max_inline_bytes: int,
        max_capture_bytes: int | None = None,
        timeout: int | None = None,  # the command's limit, passed to the sandbox
    ) -> ExecuteOffloadResult:
        """Async :meth:`execute_with_offload`."""
        limit = max(min(self._max_output_chars, max_inline_bytes), _MIN_INLINE_CHARS)
        response = await self._aexecute(command, timeout, limit)
        return ExecuteOffloadResult(offloaded=False, response=response)

    def _execute(self, command: str, timeout: int | None, max_chars: int) -> ExecuteResponse:
        return drive(self._execute_steps(command, timeout, max_chars))

    async def _aexecute(self, command: str, timeout: int | None, max_chars: int) -> ExecuteResponse:
        return await adrive(self._execute_steps(command, timeout, max_chars))

    def _current_session(self) -> Call:
        return Call(self._session, self._asession)

    def _execute_steps(
        self, command: str, timeout: int | None, max_chars: int
    ) -> Generator[Call, Any, ExecuteResponse]:
        limit = self._limit(timeout)
        session: E2BSandboxSession = yield self._current_session()
        relay, arelay = _relays(session)
        run = functools.partial(session.run_command, on_output=relay)
        arun = functools.partial(session.arun_command, on_output=arelay)
        try:
            result = yield call(run, arun, command, cwd=self._workdir, timeout=limit)
        except E2BInvalidArgumentError as exc:
            return ExecuteResponse(output=f"Error: {exc}", exit_code=1)
        output, truncated = _combined(result)
        saved: str | None = None
        if len(output) > max_chars:
            try:
                saved = yield call(session.save_output, session.asave_output, output)
            except (E2BFileError, OSError):  # the truncated text still says it is incomplete
                saved = None
        return _response(result, output, truncated, max_chars, saved)

    # --- files -----------------------------------------------------------------------------

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Write files (parent directories are created); one response per file, in order."""
        return drive(self._upload_steps(files))

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Async :meth:`upload_files`."""
        return await adrive(self._upload_steps(files))

    def _upload_steps(
        self, files: list[tuple[str, bytes]]
    ) -> Generator[Call, Any, list[FileUploadResponse]]:
        session: E2BSandboxSession = yield self._current_session()
        responses = []
        for path, content in files:
            error = _path_error(path)
            if error is None:
                try:
                    yield call(session.write_file, session.awrite_file, path, content)
                except E2BFileError as exc:
                    error = _file_error(exc)
            responses.append(FileUploadResponse(path=path, error=error))
        return responses

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Read files; one response per path, in order."""
        return drive(self._download_steps(paths))

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Async :meth:`download_files`."""
        return await adrive(self._download_steps(paths))

    def _download_steps(self, paths: list[str]) -> Generator[Call, Any, list[FileDownloadResponse]]:
        session: E2BSandboxSession = yield self._current_session()
        responses = []
        for path in paths:
            error = _path_error(path)
            content: bytes | None = None
            if error is None:
                try:
                    if (yield call(session.file_info, session.afile_info, path)).is_dir:
                        error = "is_directory"
                    else:
                        content = yield call(session.read_file, session.aread_file, path)
                except E2BFileError as exc:
                    error = _file_error(exc)
            responses.append(FileDownloadResponse(path=path, content=content, error=error))
        return responses

    @_quiet
    async def adelete(self, file_path: str) -> DeleteResult:
        """Async ``delete`` (the protocol's default would run the blocking one in a thread)."""
        quoted = shlex.quote(file_path)
        exists = await self.aexecute(f"test -e {quoted} || test -L {quoted}")
        if exists.exit_code is not None and exists.exit_code != 0:
            return DeleteResult(error=f"Error: '{file_path}' not found")
        result = await self.aexecute(f"rm -rf {quoted}")
        if result.exit_code == 0:
            return DeleteResult(path=file_path)
        detail = result.output.strip() or "unknown error"
        return DeleteResult(error=f"Error deleting file '{file_path}': {detail}")

    # --- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close what this backend created: kill its sandboxes, detach from one it was given.

        A session you passed is yours to close; a sandbox you passed is left running.
        """
        if self._owned:
            self._sessions.close()  # type: ignore[union-attr]

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        if self._owned:
            await self._sessions.aclose()  # type: ignore[union-attr]

    def __enter__(self) -> _SessionSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> _SessionSandbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._sessions!r}, workdir={self._workdir!r})"


# The file operations Deep Agents builds on execute: only execute itself streams output.
_QUIETED = "ls als read aread write awrite edit aedit delete grep agrep glob aglob"
for _name in _QUIETED.split():
    setattr(_SessionSandbox, _name, _quiet(getattr(BaseSandbox, _name)))


class E2BSandbox(_SessionSandbox):
    """A Deep Agents sandbox backend on an E2B sandbox (E2B cloud or the local runtime).

    With no arguments it runs on its own sessions: the sandbox is created on first use (on the
    embedded local runtime when ``E2B_API_KEY`` is not set), kept alive while in use, replaced
    with a sentence saying so if it stops, and killed by :meth:`close` or at exit. Inside a
    LangGraph graph each thread gets its own sandbox. Pass ``session=`` to share one of yours
    (with our tools, for example), or ``sandbox=`` to wrap an SDK sandbox you created.

    Example:
        .. code-block:: python

            from deepagents import create_deep_agent
            from langchain_e2b import E2BSandbox
            from langchain_e2b.deepagents import E2BCodeMiddleware

            backend = E2BSandbox()
            agent = create_deep_agent(
                model, backend=backend, middleware=[E2BCodeMiddleware(backend)]
            )

        Or, as with the other package published under this name:

        .. code-block:: python

            from e2b import Sandbox
            from langchain_e2b import E2BSandbox

            e2b_sandbox = Sandbox.create()
            backend = E2BSandbox(sandbox=e2b_sandbox)
            print(backend.execute("echo hello").output)
            e2b_sandbox.kill()

    Args:
        sandbox: An ``e2b`` or ``e2b_code_interpreter`` ``Sandbox`` (or ``AsyncSandbox``) to use.
            The backend attaches to it by id with the same connection options; it never kills
            it. Each call pushes its expiry ``sandbox_timeout`` seconds ahead.
        session: An :class:`~langchain_e2b.E2BSandboxSession` or a session provider such as
            :class:`~langchain_e2b.threads.E2BThreadSessions`; it stays yours to close.
        workdir: Working directory of ``execute``.
        timeout: Default seconds an ``execute`` call may run (``0``: :data:`NO_LIMIT_TIMEOUT`).
        max_output_chars: Most characters of output ``execute`` returns; beyond that the head and
            tail are kept, ``truncated`` is set and the full output is saved in the sandbox.
        sandbox_timeout: Seconds a sandbox lives after its last call (per thread, by default).
        **session_options: Options for the sessions this backend creates (``template``,
            ``envs``, ``api_key``, ``api_url``, ``sandbox_url``, ``store``, ...).
    """


class AsyncE2BSandbox(_SessionSandbox):
    """:class:`E2BSandbox` for async code: ``sandbox=`` takes an SDK ``AsyncSandbox``.

    Every method exists in both forms and each does its I/O natively (the async ones through the
    session's async methods, never in a worker thread), so either class serves sync and async
    agents; the two names keep code written for the other package's classes working.

    Example:
        .. code-block:: python

            from e2b import AsyncSandbox
            from langchain_e2b import AsyncE2BSandbox

            e2b_sandbox = await AsyncSandbox.create()
            backend = AsyncE2BSandbox(sandbox=e2b_sandbox)
            print((await backend.aexecute("echo hello")).output)
            await e2b_sandbox.kill()
    """


# --- helpers (no I/O) --------------------------------------------------------------------------


def _attach(sandbox: Any, **options: Any) -> E2BSandboxSession:
    """A session attached to an SDK sandbox, reaching it the way that sandbox does."""
    sandbox_id = getattr(sandbox, "sandbox_id", None)
    config = getattr(sandbox, "connection_config", None)
    if not isinstance(sandbox_id, str) or config is None:
        raise E2BConfigError(
            "sandbox= takes an E2B SDK sandbox (e2b.Sandbox.create() or AsyncSandbox.create()); "
            f"got {type(sandbox).__name__}."
        )
    # The SDK keeps an explicit sandbox URL (self-hosted E2B, the local runtime) privately.
    sandbox_url = getattr(config, "_sandbox_url", None)
    connection = {"api_key": config.api_key, "api_url": config.api_url}
    if sandbox_url:
        connection["sandbox_url"] = sandbox_url
    return E2BSandboxSession.connect(sandbox_id, **connection, **options)


def _path_error(path: str) -> FileOperationError | None:
    return None if path.startswith("/") else "invalid_path"


def _file_error(exc: E2BFileError) -> FileOperationError:
    if isinstance(exc, E2BFileNotFoundError):
        return "file_not_found"
    text = str(exc).lower()
    if "directory" in text and "not a directory" not in text:
        return "is_directory"
    if "permission" in text or "denied" in text:
        return "permission_denied"
    return "invalid_path"


def _combined(result: CommandResult) -> tuple[str, bool]:
    """The text ``execute`` returns, and whether the session already dropped part of it."""
    parts = [result.notice] if result.notice else []
    streams = result.stdout
    if result.stderr:
        glue = "" if not streams or streams.endswith("\n") else "\n"
        streams = f"{streams}{glue}{result.stderr}"
    if streams:
        parts.append(streams)
    if result.error:
        parts.append(f"Error: {result.error}")
    if result.timed_out:
        seconds = f"{result.timeout:g}" if result.timeout is not None else "?"
        parts.append(f"Command timed out after {seconds} seconds and was killed.")
    return "\n".join(parts), result.output_omitted > 0


def _response(
    result: CommandResult, output: str, truncated: bool, limit: int, saved: str | None
) -> ExecuteResponse:
    if len(output) > limit:
        note = _format.saved_note(saved, not_kept=result.output_omitted)
        output = _format.truncate(output, limit, note=note)
        truncated = True
    exit_code = TIMEOUT_EXIT_CODE if result.timed_out else result.exit_code
    return ExecuteResponse(output=output, exit_code=exit_code, truncated=truncated)


# --- live output: the same custom events as our tools --------------------------------------------


def _writer() -> Any:
    """LangGraph's stream writer inside a graph run, else ``None``."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except (RuntimeError, KeyError, AttributeError):
        return None


def _relays(
    session: E2BSandboxSession,
) -> tuple[_OutputCallback | None, _AsyncOutputCallback | None]:
    """Live-output callbacks for a command (blocking, async); ``None`` when nobody listens."""
    config = var_child_runnable_config.get()
    writer = _writer()
    if _QUIET.get() or (config is None and writer is None):
        return None, None

    def relay(stream: str, text: str) -> None:
        data = {"stream": stream, "text": text, "sandbox_id": session.sandbox_id}
        _dispatch(config, data)
        if writer is not None:
            writer({"type": OUTPUT_EVENT, **data})

    async def arelay(stream: str, text: str) -> None:
        data = {"stream": stream, "text": text, "sandbox_id": session.sandbox_id}
        if config is not None and config.get("callbacks") is not None:
            with contextlib.suppress(RuntimeError):  # no run to attach the event to
                await adispatch_custom_event(OUTPUT_EVENT, data, config=config)
        if writer is not None:
            writer({"type": OUTPUT_EVENT, **data})

    return relay, arelay


def _dispatch(config: RunnableConfig | None, data: dict[str, Any]) -> None:
    if config is None or config.get("callbacks") is None:
        return
    with contextlib.suppress(RuntimeError):  # no run to attach the event to
        dispatch_custom_event(OUTPUT_EVENT, data, config=config)


# --- stateful Python for deep agents -------------------------------------------------------------

CODE_PROMPT = (
    "## Python kernel\n"
    "`run_code` runs Python in a Jupyter kernel in the same sandbox as `execute` and the file "
    "tools. Variables, imports and loaded data persist between `run_code` calls: build on earlier "
    "results instead of recomputing them. Charts you show (matplotlib) come back to you as "
    "images. If a result says the sandbox was restarted, earlier variables are gone."
)


class E2BCodeMiddleware(AgentMiddleware):
    """Adds our stateful ``run_code`` tool to a deep agent, on the backend's own sandbox.

    The tool runs on the same session (or per-thread session) as ``backend``, so the kernel sees
    the files the agent wrote with ``write_file`` or ``execute``, keeps variables between steps,
    and returns charts as images.

    Example:
        .. code-block:: python

            backend = E2BSandbox()
            agent = create_deep_agent(
                model, backend=backend, middleware=[E2BCodeMiddleware(backend)]
            )

    Args:
        backend: The :class:`E2BSandbox` or :class:`AsyncE2BSandbox` the agent uses.
        prompt: The system-prompt section about the tool; ``""`` adds none.
        **tool_options: Options for the tool (``max_output_chars``, ``include_images``, ...).
    """

    def __init__(
        self, backend: _SessionSandbox, *, prompt: str = CODE_PROMPT, **tool_options: Any
    ) -> None:
        if not isinstance(backend, _SessionSandbox):
            raise E2BConfigError(
                "E2BCodeMiddleware needs the E2BSandbox or AsyncE2BSandbox the agent uses, "
                f"got {type(backend).__name__}."
            )
        super().__init__()
        self.backend = backend
        self.prompt = prompt
        self.tools: list[BaseTool] = E2BSandboxToolkit(
            session=backend.sessions, selected_tools=["run_code"], **tool_options
        ).get_tools()

    def _with_prompt(self, request: ModelRequest) -> ModelRequest:
        if not self.prompt:
            return request
        current = request.system_message
        if current is None:
            return request.override(system_message=SystemMessage(content=self.prompt))
        if isinstance(current.content, str):
            content: Any = f"{current.content}\n\n{self.prompt}"
        else:
            content = [*current.content, {"type": "text", "text": self.prompt}]
        return request.override(system_message=SystemMessage(content=content))

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Tell the model about the kernel."""
        return handler(self._with_prompt(request))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call`."""
        return await handler(self._with_prompt(request))


__all__ = [
    "CODE_PROMPT",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WORKDIR",
    "NO_LIMIT_TIMEOUT",
    "TIMEOUT_EXIT_CODE",
    "AsyncE2BSandbox",
    "E2BCodeMiddleware",
    "E2BSandbox",
]
