"""``E2BSandboxSession``: one E2B sandbox, created lazily, kept alive, recreated when gone.

Each operation (run code, a command, each file operation, close) is written once, as the steps
it takes (:mod:`langchain_e2b._steps`), over the core in :mod:`langchain_e2b._lifecycle` (which
sandbox is current, moving to a new one, keep-alive, events; its docstring states the locking
rule). Its public methods run that one operation with a blocking or an async driver.
"""

from __future__ import annotations

import inspect
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from e2b_code_interpreter import AsyncSandbox, Sandbox
from langchain_core.runnables import RunnableConfig
from pydantic import SecretStr

from langchain_e2b import _backend, _sdk
from langchain_e2b._backend import SandboxBackend
from langchain_e2b._format import CodeResult, CommandResult
from langchain_e2b._lifecycle import (
    EMBEDDED_ELSEWHERE,
    RESTART_NOTICE,
    Lifecycle,
    Listener,
    Mode,
    SessionEvent,
    SessionProvider,
    async_mode,
    collect_notices,
    restart_notice,
    sync_mode,
)
from langchain_e2b._sdk import DEFAULT_CWD, OUTPUT_DIR, FileEntry, OutputCallback
from langchain_e2b._steps import Steps, adrive, drive
from langchain_e2b.errors import E2BConfigError, E2BToolInputError
from langchain_e2b.notebook import HistoryRecorder, export_notebook

if TYPE_CHECKING:
    from langchain_e2b.jobs import Jobs

T = TypeVar("T")
R = TypeVar("R", CodeResult, CommandResult)

METADATA_TAG = {"langchain_e2b": "1"}
"""Added to every sandbox's metadata so our sandboxes can be listed and swept."""


class E2BSandboxSession:
    """One E2B sandbox shared by every call made through this session.

    The sandbox is created on first use and reused afterwards. Every call pushes its expiry
    forward, so a sandbox in use does not expire while an idle one still does. If the sandbox is
    gone (expired, killed, backend restarted), the next call creates a new one and its result
    starts with a sentence saying so. ``close()`` kills the sandbox; so does interpreter exit.

    The backend is chosen on first use: explicit ``api_key``/``api_url``/``sandbox_url``, else
    ``E2B_API_KEY`` in the environment (E2B cloud), else the embedded local runtime.

    Whatever the sandbox prints, the session keeps at most ``capture_chars`` characters of each
    stream (head and tail) while it streams; a marker line in the record says how much of the
    middle was dropped and how to keep all of it. Failures come as
    :mod:`langchain_e2b.errors` exceptions, never as SDK ones.

    Example:
        .. code-block:: python

            from langchain_e2b import E2BSandboxSession

            with E2BSandboxSession() as session:
                session.run_code("x = 41")
                print(session.run_code("x + 1").text)  # 42

    Args:
        template: Sandbox template; defaults to the code-interpreter template.
        sandbox_timeout: Seconds the sandbox lives after the last call (its E2B timeout).
        on_timeout: What the backend does with a sandbox whose timeout expires: ``"kill"``
            (the default; the next call starts a new sandbox and says the state is lost) or
            ``"pause"`` (E2B's ``lifecycle={"on_timeout": "pause"}``: the sandbox keeps its
            variables, files and processes without using CPU, and the next call resumes it).
        envs: Environment variables for every process and kernel in the sandbox.
        metadata: Sandbox metadata; ``{"langchain_e2b": "1"}`` is always added.
        api_key: E2B API key; falls back to ``E2B_API_KEY``.
        api_url: E2B API URL, for self-hosted E2B or the local runtime.
        sandbox_url: Sandbox URL, for self-hosted E2B or the local runtime.
        cwd: Working directory for code, commands and relative paths.
        timeout: Default per-call timeout in seconds for code and commands.
        max_output_chars: Kept for tools that read it; tools and the toolkit decide presentation.
        include_images: Kept for tools that read it; tools and the toolkit decide presentation.
        capture_chars: Most characters of each output stream the session keeps per call.
        history: Record cells and commands in a :class:`~langchain_e2b.notebook.HistoryRecorder`
            (``True``: a new one with default limits; ``False``: none; or your own, which can be
            shared by several sessions and outlives them).
    """

    def __init__(
        self,
        *,
        template: str | None = None,
        sandbox_timeout: int = 300,
        on_timeout: Literal["kill", "pause"] = "kill",
        envs: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        api_key: SecretStr | str | None = None,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        cwd: str = DEFAULT_CWD,
        timeout: float = 120,
        max_output_chars: int = 20_000,
        include_images: bool = True,
        capture_chars: int = 100_000,
        history: bool | HistoryRecorder = True,
    ) -> None:
        if sandbox_timeout < 1:
            raise E2BConfigError(f"sandbox_timeout must be at least 1, got {sandbox_timeout}")
        if timeout <= 0:
            raise E2BConfigError(f"timeout must be a positive number of seconds, got {timeout}")
        if max_output_chars < 200 or capture_chars < 200:
            raise E2BConfigError("max_output_chars and capture_chars must be at least 200")
        if on_timeout not in ("kill", "pause"):
            raise E2BConfigError(f"on_timeout must be 'kill' or 'pause', got {on_timeout!r}")
        if (
            on_timeout == "pause"
            and "lifecycle" not in inspect.signature(Sandbox.create).parameters
        ):
            raise E2BConfigError(
                "on_timeout='pause' needs an e2b SDK whose Sandbox.create accepts lifecycle "
                "(e2b 2.53.1 or newer): upgrade e2b and e2b-code-interpreter, or use "
                "on_timeout='kill'."
            )
        if not posixpath.isabs(cwd):
            raise E2BConfigError(f"cwd must be an absolute path inside the sandbox, got {cwd!r}")
        self.template: str = template or Sandbox.default_template
        self.sandbox_timeout = int(sandbox_timeout)
        self.on_timeout: Literal["kill", "pause"] = on_timeout
        self.envs = dict(envs or {})
        self.metadata = {**(metadata or {}), **METADATA_TAG}
        self.cwd = posixpath.normpath(cwd)
        self.timeout = float(timeout)
        self.max_output_chars = int(max_output_chars)
        self.include_images = include_images
        self.capture_chars = int(capture_chars)
        self._recorder = HistoryRecorder() if history is True else (history or None)
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._api_url = api_url
        self._sandbox_url = sandbox_url
        self._backend: SandboxBackend | None = None
        self._life = Lifecycle(self)
        self._jobs: Jobs | None = None

    # --- construction, identity, provider protocol -------------------------------------------

    @classmethod
    def connect(cls, sandbox_id: str, **options: Any) -> E2BSandboxSession:
        """Attach to an existing sandbox by id (lazily, on first use).

        ``close()`` does not kill a sandbox the session attached to, unless it had to replace it.
        If the sandbox no longer exists, the first call creates a new one and says so.

        Args:
            sandbox_id: The sandbox to attach to.
            **options: The same keyword options as the constructor.
        """
        session = cls(**options)
        session._life.attach(sandbox_id)
        return session

    @property
    def sandbox_id(self) -> str | None:
        """The current sandbox's id, or ``None`` before the first call."""
        return self._life.sandbox_id

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self._life.closed

    @property
    def history_recorder(self) -> HistoryRecorder | None:
        """Where cells and commands are recorded (``None`` with ``history=False``)."""
        return self._recorder

    @property
    def history(self) -> list[CodeResult]:
        """The recorded ``run_code`` cells, oldest first (a copy; also after ``close()``)."""
        return self._recorder.cells if self._recorder is not None else []

    def export_notebook(
        self, path: str | Path, *, title: str | None = None, include_commands: bool = False
    ) -> Path:
        """Write the recorded cells (commands too, as ``!`` cells, if asked) as an ``.ipynb``."""
        return export_notebook(self, path, title=title, include_commands=include_commands)

    @property
    def jobs(self) -> Jobs:
        """Background jobs started in this session: start, status, output, stop (sync and async).

        See :class:`langchain_e2b.jobs.Jobs`; running jobs are stopped when the session closes.
        """
        if self._jobs is None:
            from langchain_e2b.jobs import Jobs  # it drives its steps with the tools' drivers

            self._jobs = Jobs(self)
        return self._jobs

    @property
    def backend(self) -> SandboxBackend:
        """The backend this session uses (resolved on first access; may start the local runtime).

        ``backend.dies_with_process`` tells whether its sandboxes end with this process.
        """
        if self._backend is None:
            self._backend = _backend.resolve_backend(
                self._api_key, self._api_url, self._sandbox_url
            )
        return self._backend

    @property
    def resolved_backend(self) -> SandboxBackend | None:
        """The backend if it was resolved already (never starts anything)."""
        return self._backend

    def connection_options(self) -> dict[str, str]:
        """The resolved SDK options: ``api_key`` and maybe ``api_url``/``sandbox_url``."""
        return dict(self.backend.options)

    def get(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Session-provider protocol: a session is its own provider."""
        return self

    async def aget(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Session-provider protocol: a session is its own provider."""
        return self

    def __repr__(self) -> str:
        state = "closed" if self.closed else (self.sandbox_id or "no sandbox yet")
        return f"E2BSandboxSession(template={self.template!r}, {state})"

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every :class:`SessionEvent` (added once per callable)."""
        self._life.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._life.remove_listener(listener)

    def resolve_path(self, path: str) -> str:
        """Absolute sandbox path for ``path``, relative paths being taken from ``cwd``."""
        if not path:
            raise E2BToolInputError("path must not be empty.")
        if "\0" in path:
            raise E2BToolInputError(f"path {path!r} contains a NUL character; remove it.")
        return posixpath.normpath(posixpath.join(self.cwd, path))

    def _call_timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.timeout
        if timeout <= 0:
            raise E2BConfigError(f"timeout must be a positive number of seconds, got {timeout}")
        return float(timeout)

    # --- operations, written once -----------------------------------------------------------

    def _result(self, mode: Mode, op: _sdk.Attempt[R], action: str, **how: Any) -> Steps[R]:
        """Run a code or command attempt; put the call's notices on the record and record it."""
        with collect_notices() as notices:
            result = yield from self._life.on_sandbox(mode, op, action=action, **how)
        result.notice = " ".join(notices) or None
        if self._recorder is not None:
            self._recorder.record(result)
        return result

    def _run_code(
        self,
        mode: Mode,
        code: str,
        language: str | None,
        timeout: float | None,
        on_output: OutputCallback | None,
    ) -> Steps[CodeResult]:
        limit = self._call_timeout(timeout)
        return (
            yield from self._result(
                mode,
                _sdk.code_attempt(code, language, limit, on_output, self.capture_chars),
                f"run code as {language!r}" if language else "run code",
                lifetime=_sdk.lifetime_for(self.sandbox_timeout, limit),
                fixable=_sdk.language_error(language),
            )
        )

    def _run_command(
        self,
        mode: Mode,
        cmd: str,
        cwd: str | None,
        timeout: float | None,
        background: bool,
        on_output: OutputCallback | None,
    ) -> Steps[CommandResult]:
        workdir = self.resolve_path(cwd) if cwd else self.cwd
        if background:
            limit = self._call_timeout(timeout) if timeout is not None else None
            op = _sdk.background_attempt(cmd, workdir, limit)
        else:
            limit = self._call_timeout(timeout)
            op = _sdk.command_attempt(cmd, workdir, limit, on_output, self.capture_chars)
        lifetime = _sdk.lifetime_for(self.sandbox_timeout, 0 if background else limit or 0)
        return (
            yield from self._result(
                mode,
                op,
                f"run a command in {workdir}",
                lifetime=lifetime,
                fixable=_sdk.command_error(workdir),
            )
        )

    def _file_op(self, mode: Mode, action: str, path: str, op: _sdk.FileCall[T]) -> Steps[T]:
        target = self.resolve_path(path)
        return (
            yield from self._life.on_sandbox(
                mode,
                _sdk.file_attempt(op, target),
                lifetime=self.sandbox_timeout,
                action=f"{action} {target}",
                fixable=_sdk.file_error(target, action),
            )
        )

    def _ensure(self, mode: Mode) -> Steps[Any]:
        return (yield from self._life.handle(mode))[0]

    # --- public methods: each runs its operation with the blocking or the async driver -------

    def ensure_sandbox(self) -> Sandbox:
        """Return the SDK sandbox, creating or connecting to it if needed."""
        return drive(self._ensure(sync_mode()))

    async def aensure_sandbox(self) -> AsyncSandbox:
        """Return the async SDK sandbox, creating or connecting to it if needed."""
        return await adrive(self._ensure(async_mode()))

    def run_code(
        self,
        code: str,
        *,
        language: str | None = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> CodeResult:
        """Run code in the sandbox's stateful Jupyter kernel.

        Variables, imports and files persist between calls. Errors in the code, and timeouts, are
        reported in the returned record rather than raised.

        Args:
            code: The code to run.
            language: Kernel language (``None`` for the default Python context).
            timeout: Seconds before the execution is interrupted; defaults to ``timeout``.
            on_output: Called as ``on_output(stream, text)`` with each output chunk as it arrives.

        Returns:
            The executed cell, also recorded in the history.

        Raises:
            E2BInvalidArgumentError: The sandbox has no kernel for ``language``.
            E2BSandboxError: The backend failed (see :mod:`langchain_e2b.errors`).
        """
        return drive(self._run_code(sync_mode(), code, language, timeout, on_output))

    async def arun_code(
        self,
        code: str,
        *,
        language: str | None = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> CodeResult:
        """Async :meth:`run_code`; ``on_output`` may be a coroutine function."""
        return await adrive(self._run_code(async_mode(), code, language, timeout, on_output))

    def run_command(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        timeout: float | None = None,
        background: bool = False,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run a shell command (``bash -l -c``) in the sandbox.

        A non-zero exit code or a timeout is reported in the returned record rather than raised.
        A background command returns at once with its pid; its output goes to ``log_path``.

        Args:
            cmd: The command line.
            cwd: Working directory; relative to the session's ``cwd``.
            timeout: Seconds before the command is killed; defaults to ``timeout``. For background
                commands the default is no limit.
            background: Start the command and return without waiting for it.
            on_output: Called as ``on_output(stream, text)`` with each output chunk as it arrives.

        Raises:
            E2BInvalidArgumentError: The sandbox refused to start it (missing ``cwd``, too long).
            E2BSandboxError: The backend failed (see :mod:`langchain_e2b.errors`).
        """
        return drive(self._run_command(sync_mode(), cmd, cwd, timeout, background, on_output))

    async def arun_command(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        timeout: float | None = None,
        background: bool = False,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Async :meth:`run_command`; ``on_output`` may be a coroutine function."""
        return await adrive(
            self._run_command(async_mode(), cmd, cwd, timeout, background, on_output)
        )

    def read_file(self, path: str) -> bytes:
        """Read a file's bytes; relative paths are taken from ``cwd``.

        Raises:
            E2BFileNotFoundError: There is no such file (also a ``FileNotFoundError``).
            E2BFileError: The sandbox refused (permission denied, a directory, ...).
        """
        return drive(self._file_op(sync_mode(), "read", path, _sdk.read))

    async def aread_file(self, path: str) -> bytes:
        """Async :meth:`read_file`."""
        return await adrive(self._file_op(async_mode(), "read", path, _sdk.read))

    def write_file(self, path: str, data: str | bytes) -> str:
        """Write a file, creating parent directories; returns its absolute path.

        Raises:
            E2BFileError: The sandbox refused (permission denied, a directory, disk full, ...).
        """
        return drive(self._file_op(sync_mode(), "write", path, _sdk.write(data)))

    async def awrite_file(self, path: str, data: str | bytes) -> str:
        """Async :meth:`write_file`."""
        return await adrive(self._file_op(async_mode(), "write", path, _sdk.write(data)))

    def file_info(self, path: str) -> FileEntry:
        """Stat one path.

        Raises:
            E2BFileNotFoundError: There is no such file or directory.
        """
        return drive(self._file_op(sync_mode(), "stat", path, _sdk.info))

    async def afile_info(self, path: str) -> FileEntry:
        """Async :meth:`file_info`."""
        return await adrive(self._file_op(async_mode(), "stat", path, _sdk.info))

    def list_files(self, path: str = ".", *, depth: int = 1) -> list[FileEntry]:
        """List a directory, ``depth`` levels deep, sorted by path.

        Raises:
            E2BFileNotFoundError: There is no such directory.
            E2BFileError: The path is not a directory, or the sandbox refused.
        """
        return drive(self._file_op(sync_mode(), "list", path, _sdk.listing(depth)))

    async def alist_files(self, path: str = ".", *, depth: int = 1) -> list[FileEntry]:
        """Async :meth:`list_files`."""
        return await adrive(self._file_op(async_mode(), "list", path, _sdk.listing(depth)))

    def save_output(self, text: str) -> str:
        """Write ``text`` to a new file under ``/tmp/langchain_e2b`` and return its path."""
        return self.write_file(_sdk.output_path(), text)

    async def asave_output(self, text: str) -> str:
        """Async :meth:`save_output`."""
        return await self.awrite_file(_sdk.output_path(), text)

    def close(self, *, kill: bool | None = None) -> None:
        """Close the session and kill its sandbox.

        The history stays readable (and exportable) after closing.

        Args:
            kill: Kill the sandbox (``True``) or leave it to its E2B timeout (``False``). By
                default a sandbox the session created is killed and one it attached to is not.
        """
        if self._jobs is not None and not self.closed:
            self._jobs.stop_all()
        drive(self._life.close(sync_mode(), kill))

    async def aclose(self, *, kill: bool | None = None) -> None:
        """Async :meth:`close`."""
        if self._jobs is not None and not self.closed:
            await self._jobs.astop_all()
        await adrive(self._life.close(async_mode(), kill))

    def __enter__(self) -> E2BSandboxSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> E2BSandboxSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


__all__ = [
    "DEFAULT_CWD",
    "EMBEDDED_ELSEWHERE",
    "METADATA_TAG",
    "OUTPUT_DIR",
    "RESTART_NOTICE",
    "CodeResult",
    "CommandResult",
    "E2BSandboxSession",
    "FileEntry",
    "Listener",
    "OutputCallback",
    "SandboxBackend",
    "SessionEvent",
    "SessionProvider",
    "collect_notices",
    "restart_notice",
]
