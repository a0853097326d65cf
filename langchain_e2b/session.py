"""``E2BSandboxSession``: one E2B sandbox, created lazily, kept alive, recreated when gone."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import inspect
import logging
import math
import os
import posixpath
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import httpx
from e2b import (
    AuthenticationException,
    CommandExitException,
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    NotFoundException,
    SandboxException,
    SandboxNotFoundException,
    SandboxNotRunningException,
    TimeoutException,
)
from e2b_code_interpreter import AsyncSandbox, Sandbox
from langchain_core.runnables import RunnableConfig
from pydantic import SecretStr

from langchain_e2b import _format
from langchain_e2b._format import CodeResult, CommandResult
from langchain_e2b.errors import (
    E2BConfigError,
    E2BSandboxError,
    E2BSessionClosedError,
    E2BToolInputError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

METADATA_TAG = {"langchain_e2b": "1"}
"""Added to every sandbox's metadata so our sandboxes can be listed and swept."""

DEFAULT_CWD = "/home/user"
OUTPUT_DIR = "/tmp/langchain_e2b"
"""Where full outputs of truncated results and logs of background commands are written."""

RESTART_NOTICE = (
    "Note: the sandbox had stopped (it expired or was killed) and was restarted, "
    "so all earlier variables, imports, installed packages and files are gone."
)

EventKind = Literal["created", "recreated", "connected", "closed"]
OutputCallback = Callable[[str, str], Any]
"""``on_output(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``. May be a coroutine
function when passed to the async methods."""


@dataclass(frozen=True)
class SessionEvent:
    """A change in the session's sandbox, delivered to listeners.

    Attributes:
        kind: ``created``, ``recreated`` (the old sandbox was gone), ``connected`` (attached to an
            existing sandbox) or ``closed``.
        sandbox_id: The sandbox the event is about.
        message: One plain sentence describing the event.
    """

    kind: EventKind
    sandbox_id: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """Return the event as a JSON-serialisable dict."""
        return {"event": self.kind, "sandbox_id": self.sandbox_id, "message": self.message}


Listener = Callable[[SessionEvent], Any]
"""Called with every :class:`SessionEvent`. In the async methods a returned awaitable is awaited."""


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory listing.

    Attributes:
        path: Absolute path inside the sandbox.
        name: Base name.
        is_dir: Whether the entry is a directory.
        size: Size in bytes.
    """

    path: str
    name: str
    is_dir: bool
    size: int


@runtime_checkable
class SessionProvider(Protocol):
    """Anything that gives the session to use for one tool call.

    ``E2BSandboxSession`` provides itself; a thread-scoped provider can pick a session from the
    ``RunnableConfig`` (for example by its ``thread_id``).
    """

    def get(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Return the session for a synchronous call."""
        ...

    async def aget(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Return the session for an asynchronous call."""
        ...


class _SandboxGone(Exception):
    """Internal: a call found the sandbox stopped; the session recreates it and retries."""


# Notices (such as a restart) raised during the current call, so that a tool can put them first.
_NOTICES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "langchain_e2b_notices", default=None
)


@contextlib.contextmanager
def collect_notices() -> Iterator[list[str]]:
    """Collect the notices the session raises inside the ``with`` block (in this context)."""
    outer = _NOTICES.get()
    notices: list[str] = []
    token = _NOTICES.set(notices)
    try:
        yield notices
    finally:
        _NOTICES.reset(token)
        if outer is not None:
            outer.extend(n for n in notices if n not in outer)


def _note(notice: str) -> None:
    notices = _NOTICES.get()
    if notices is not None and notice not in notices:
        notices.append(notice)


# Sandboxes this process created and has not killed yet: killed at interpreter exit.
_LIVE: dict[str, dict[str, str]] = {}
_LIVE_LOCK = threading.Lock()


def _kill_live_sandboxes() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE.items())
        _LIVE.clear()
    for sandbox_id, connection in live:
        try:
            Sandbox.kill(sandbox_id, request_timeout=5, **connection)
        except Exception:  # the backend may already be gone at exit
            logger.debug("could not kill sandbox %s at exit", sandbox_id, exc_info=True)


atexit.register(_kill_live_sandboxes)


def _resolve_connection(
    api_key: SecretStr | None, api_url: str | None, sandbox_url: str | None
) -> dict[str, str]:
    """Explicit options, then ``E2B_API_KEY`` (E2B cloud), then the embedded local runtime."""
    if api_key is not None or api_url or sandbox_url:
        key = api_key.get_secret_value() if api_key is not None else os.environ.get("E2B_API_KEY")
        if not key:
            raise E2BConfigError(
                "api_url/sandbox_url were given without an API key: pass api_key=... "
                "or set E2B_API_KEY."
            )
        options = {"api_key": key}
        if api_url:
            options["api_url"] = api_url
        if sandbox_url:
            options["sandbox_url"] = sandbox_url
        return options
    env_key = os.environ.get("E2B_API_KEY")
    if env_key:
        return {"api_key": env_key}
    try:
        from langchain_e2b.local import default_runtime  # optional extra
    except ImportError as exc:
        raise E2BConfigError(
            "No E2B backend: set E2B_API_KEY to use the E2B cloud, or install the local runtime "
            "with `pip install 'langchain-e2b[local]'`."
        ) from exc
    try:
        return dict(default_runtime().connection_options())
    except Exception as exc:
        raise E2BConfigError(
            f"E2B_API_KEY is not set and the embedded local runtime could not start: {exc}"
        ) from exc


def _is_gone_exception(exc: BaseException) -> bool | None:
    """True if ``exc`` proves the sandbox is gone, False if it proves it is not, None if unsure."""
    if isinstance(exc, _SandboxGone | SandboxNotFoundException | SandboxNotRunningException):
        return True
    if isinstance(exc, FileNotFoundException | CommandExitException | InvalidArgumentException):
        return False
    if isinstance(exc, SandboxException | httpx.TransportError):
        return None
    return False


class E2BSandboxSession:
    """One E2B sandbox shared by every call made through this session.

    The sandbox is created on first use and reused afterwards. Every call pushes its expiry
    forward, so a sandbox in use does not expire while an idle one still does. If the sandbox is
    gone (expired, killed, backend restarted), the next call creates a new one and its result
    starts with a sentence saying so. ``close()`` kills the sandbox; so does interpreter exit.

    The backend is chosen on first use: explicit ``api_key``/``api_url``/``sandbox_url``, else
    ``E2B_API_KEY`` in the environment (E2B cloud), else the embedded local runtime.

    Example:
        .. code-block:: python

            from langchain_e2b import E2BSandboxSession

            with E2BSandboxSession() as session:
                session.run_code("x = 41")
                print(session.run_code("x + 1").text)  # 42

    Args:
        template: Sandbox template; defaults to the code-interpreter template.
        sandbox_timeout: Seconds the sandbox lives after the last call (its E2B timeout).
        envs: Environment variables for every process and kernel in the sandbox.
        metadata: Sandbox metadata; ``{"langchain_e2b": "1"}`` is always added.
        api_key: E2B API key; falls back to ``E2B_API_KEY``.
        api_url: E2B API URL, for self-hosted E2B or the local runtime.
        sandbox_url: Sandbox URL, for self-hosted E2B or the local runtime.
        cwd: Working directory for code, commands and relative paths.
        timeout: Default per-call timeout in seconds for code and commands.
        max_output_chars: Tool output longer than this keeps its head and tail only.
        include_images: Whether tools return PNG/JPEG outputs to the model as image blocks.
    """

    def __init__(
        self,
        *,
        template: str | None = None,
        sandbox_timeout: int = 300,
        envs: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        api_key: SecretStr | str | None = None,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        cwd: str = DEFAULT_CWD,
        timeout: float = 120,
        max_output_chars: int = 20_000,
        include_images: bool = True,
    ) -> None:
        if sandbox_timeout < 1:
            raise E2BConfigError(f"sandbox_timeout must be at least 1, got {sandbox_timeout}")
        if timeout <= 0:
            raise E2BConfigError(f"timeout must be a positive number of seconds, got {timeout}")
        if max_output_chars < 200:
            raise E2BConfigError(f"max_output_chars must be at least 200, got {max_output_chars}")
        if not posixpath.isabs(cwd):
            raise E2BConfigError(f"cwd must be an absolute path inside the sandbox, got {cwd!r}")
        self.template: str = template or Sandbox.default_template
        self.sandbox_timeout = int(sandbox_timeout)
        self.envs = dict(envs or {})
        self.metadata = {**(metadata or {}), **METADATA_TAG}
        self.cwd = posixpath.normpath(cwd)
        self.timeout = float(timeout)
        self.max_output_chars = int(max_output_chars)
        self.include_images = include_images
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._api_url = api_url
        self._sandbox_url = sandbox_url
        self._connection: dict[str, str] | None = None

        self._lock = threading.RLock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._sandbox_id: str | None = None
        self._generation = 0  # bumped whenever the session moves to a new sandbox
        self._owned = False  # whether close() kills the sandbox
        self._announce_connect = False
        self._sync: tuple[int, Sandbox] | None = None
        self._async: tuple[int, asyncio.AbstractEventLoop, AsyncSandbox] | None = None
        self._expires_at = 0.0  # monotonic estimate of the sandbox's expiry
        self._closed = False
        self._listeners: list[Listener] = []
        self._history: list[CodeResult] = []

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
        session._sandbox_id = sandbox_id
        session._generation = 1
        session._announce_connect = True
        return session

    @property
    def sandbox_id(self) -> str | None:
        """The current sandbox's id, or ``None`` before the first call."""
        return self._sandbox_id

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self._closed

    @property
    def history(self) -> list[CodeResult]:
        """Every ``run_code`` cell executed through this session, oldest first (a copy)."""
        return list(self._history)

    def export_notebook(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write the cells this session executed, with their outputs, as an ``.ipynb`` file.

        Needs ``nbformat`` (the ``agents`` extra). Returns the path written.
        """
        from langchain_e2b.notebook import export_notebook

        return export_notebook(self, path, title=title)

    def connection_options(self) -> dict[str, str]:
        """The resolved SDK options: ``api_key`` and maybe ``api_url``/``sandbox_url``."""
        if self._connection is None:
            with self._lock:
                if self._connection is None:
                    self._connection = _resolve_connection(
                        self._api_key, self._api_url, self._sandbox_url
                    )
        return dict(self._connection)

    def get(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Session-provider protocol: a session is its own provider."""
        return self

    async def aget(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Session-provider protocol: a session is its own provider."""
        return self

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self._sandbox_id or "no sandbox yet")
        return f"E2BSandboxSession(template={self.template!r}, {state})"

    # --- listeners ---------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every :class:`SessionEvent` (added once per callable)."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, events: list[SessionEvent]) -> None:
        for event in events:
            for listener in list(self._listeners):
                try:
                    result = listener(event)
                    if inspect.iscoroutine(result):
                        result.close()  # an async listener cannot run on the sync path
                except Exception:  # a broken listener must not break the call
                    logger.warning("session listener failed on %s", event.kind, exc_info=True)

    async def _aemit(self, events: list[SessionEvent]) -> None:
        for event in events:
            for listener in list(self._listeners):
                try:
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # a broken listener must not break the call
                    logger.warning("session listener failed on %s", event.kind, exc_info=True)

    # --- shared state transitions (no I/O) ---------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise E2BSessionClosedError(
                "This E2BSandboxSession is closed; create a new session to run more code."
            )

    def _mark_closed(self, kill: bool | None) -> tuple[str | None, bool]:
        """Close the session (once); return the sandbox to release and whether to kill it."""
        with self._lock:
            if self._closed:
                return None, False
            self._closed = True
            if self._sandbox_id is not None and self._owned:
                with _LIVE_LOCK:
                    _LIVE.pop(self._sandbox_id, None)
            return self._sandbox_id, self._owned if kill is None else kill

    def _create_kwargs(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "timeout": self.sandbox_timeout,
            "metadata": dict(self.metadata),
            "envs": dict(self.envs) or None,
            **self.connection_options(),
        }

    def _adopt(self, sandbox_id: str, kind: EventKind) -> SessionEvent:
        """Make a sandbox this session created the current one."""
        old = self._sandbox_id
        if old is not None and self._owned:
            with _LIVE_LOCK:
                _LIVE.pop(old, None)
        self._sandbox_id = sandbox_id
        self._generation += 1
        self._owned = True
        self._announce_connect = False
        self._expires_at = time.monotonic() + self.sandbox_timeout
        with _LIVE_LOCK:
            _LIVE[sandbox_id] = self.connection_options()
        if kind == "recreated":
            _note(RESTART_NOTICE)
            return SessionEvent(kind, sandbox_id, RESTART_NOTICE)
        return SessionEvent(kind, sandbox_id, f"Created sandbox {sandbox_id} ({self.template}).")

    def _attached(self) -> list[SessionEvent]:
        self._expires_at = max(self._expires_at, time.monotonic() + self.sandbox_timeout)
        if not self._announce_connect or self._sandbox_id is None:
            return []
        self._announce_connect = False
        sid = self._sandbox_id
        return [SessionEvent("connected", sid, f"Connected to existing sandbox {sid}.")]

    def _keepalive_due(self, lifetime: float) -> int | None:
        """Seconds to set the sandbox's timeout to, or None if its expiry is close enough already.

        Pushing on every call would add a round trip to each one; pushing only once the remaining
        lifetime has dropped by a small slack keeps an active sandbox alive just as well. After a
        call that needed a longer lifetime, the expiry is brought back to ``sandbox_timeout`` so
        an idle sandbox still expires on time.
        """
        slack = min(10.0, self.sandbox_timeout / 10)
        remaining = self._expires_at - time.monotonic()
        if lifetime - slack <= remaining <= max(lifetime, self.sandbox_timeout) + slack:
            return None
        return math.ceil(lifetime)

    def _call_timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.timeout
        if timeout <= 0:
            raise E2BConfigError(f"timeout must be a positive number of seconds, got {timeout}")
        return float(timeout)

    def _lifetime_for(self, call_timeout: float) -> float:
        # A call may run longer than the sandbox's own timeout: keep it alive for the whole call.
        return max(float(self.sandbox_timeout), call_timeout + 30)

    def resolve_path(self, path: str) -> str:
        """Absolute sandbox path for ``path``, relative paths being taken from ``cwd``."""
        if not path:
            raise E2BToolInputError("path must not be empty.")
        if "\0" in path:
            raise E2BToolInputError(f"path {path!r} contains a NUL character; remove it.")
        return posixpath.normpath(posixpath.join(self.cwd, path))

    def _backend_error(self, action: str, exc: BaseException) -> Exception:
        where = self._connection.get("api_url", "the E2B cloud") if self._connection else "E2B"
        if isinstance(exc, AuthenticationException):
            return E2BConfigError(
                f"E2B rejected the credentials while trying to {action} at {where}: {exc}. "
                "Check api_key / E2B_API_KEY."
            )
        return E2BSandboxError(f"Could not {action} at {where}: {exc}")

    # --- sync shell --------------------------------------------------------------------------

    def ensure_sandbox(self) -> Sandbox:
        """Return the SDK sandbox, creating or connecting to it if needed."""
        return self._sync_handle()[0]

    def _sync_handle(self) -> tuple[Sandbox, int]:
        handle = self._sync
        if handle is not None and handle[0] == self._generation and not self._closed:
            return handle[1], handle[0]
        events: list[SessionEvent] = []
        with self._lock:
            self._check_open()
            handle = self._sync
            if handle is None or handle[0] != self._generation:
                handle = self._open_sync(events)
                self._sync = handle
        self._emit(events)
        return handle[1], handle[0]

    def _open_sync(self, events: list[SessionEvent]) -> tuple[int, Sandbox]:
        if self._sandbox_id is not None:
            try:
                sandbox = Sandbox.connect(
                    self._sandbox_id, timeout=self.sandbox_timeout, **self.connection_options()
                )
            except NotFoundException:
                return self._create_sync(events, "recreated")
            except Exception as exc:
                raise self._backend_error(f"connect to sandbox {self._sandbox_id}", exc) from exc
            events.extend(self._attached())
            return self._generation, sandbox
        return self._create_sync(events, "created")

    def _create_sync(self, events: list[SessionEvent], kind: EventKind) -> tuple[int, Sandbox]:
        try:
            sandbox = Sandbox.create(**self._create_kwargs())
        except E2BConfigError:
            raise
        except Exception as exc:
            raise self._backend_error(f"create a {self.template} sandbox", exc) from exc
        events.append(self._adopt(sandbox.sandbox_id, kind))
        return self._generation, sandbox

    def _replace_sync(self, failed_generation: int) -> None:
        events: list[SessionEvent] = []
        with self._lock:
            self._check_open()
            if self._generation == failed_generation:
                old = self._sandbox_id
                self._sync = self._create_sync(events, "recreated")
                if old is not None:
                    self._discard_sync(old)
            else:
                _note(RESTART_NOTICE)
        self._emit(events)

    def _discard_sync(self, sandbox_id: str) -> None:
        # Best effort: a sandbox that only looked gone (network trouble) must not keep running.
        with contextlib.suppress(Exception):
            Sandbox.kill(sandbox_id, request_timeout=5, **self.connection_options())

    def _probe_sync(self, sandbox: Sandbox) -> bool:
        try:
            return bool(sandbox.is_running(request_timeout=10))
        except Exception:  # an unreachable sandbox counts as gone
            return False

    def _is_gone_sync(self, sandbox: Sandbox, exc: BaseException) -> bool:
        verdict = _is_gone_exception(exc)
        return (not self._probe_sync(sandbox)) if verdict is None else verdict

    def _keepalive_sync(self, sandbox: Sandbox, lifetime: float) -> None:
        seconds = self._keepalive_due(lifetime)
        if seconds is None:
            return
        try:
            sandbox.set_timeout(seconds)
        except NotFoundException:
            raise
        except Exception:  # a failed push must not fail the call itself
            logger.warning("could not extend the timeout of sandbox %s", sandbox.sandbox_id)
            return
        self._expires_at = time.monotonic() + seconds

    def _call(self, op: Callable[[Sandbox], T], *, lifetime: float) -> T:
        """Run ``op`` on the sandbox; if the sandbox is gone, recreate it once and run it again."""
        for attempt in range(2):
            sandbox, generation = self._sync_handle()
            try:
                self._keepalive_sync(sandbox, lifetime)
                value = op(sandbox)
            except Exception as exc:
                if not self._is_gone_sync(sandbox, exc):
                    raise
                if attempt:
                    raise E2BSandboxError(
                        "The sandbox stopped again right after it was recreated."
                    ) from exc
                self._replace_sync(generation)
                continue
            self._keepalive_sync(sandbox, self.sandbox_timeout)
            return value
        raise AssertionError("unreachable")

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
            The executed cell, also appended to :attr:`history`.
        """
        limit = self._call_timeout(timeout)

        def op(sandbox: Sandbox) -> CodeResult:
            streams = _Streams(on_output)
            try:
                execution = sandbox.run_code(
                    code,
                    language=language,
                    on_stdout=streams.stdout_message,
                    on_stderr=streams.stderr_message,
                    timeout=limit,
                )
            except TimeoutException as exc:
                if not isinstance(exc, SandboxNotRunningException) and self._probe_sync(sandbox):
                    return streams.timed_out_code(code, language, sandbox.sandbox_id, limit)
                raise _SandboxGone(str(exc)) from exc
            return _format.code_result(
                execution,
                code=code,
                language=language,
                sandbox_id=sandbox.sandbox_id,
                timeout=limit,
            )

        with collect_notices() as notices:
            result = self._call(op, lifetime=self._lifetime_for(limit))
        result.notice = " ".join(notices) or None
        self._history.append(result)
        return result

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
        """
        workdir = self.resolve_path(cwd) if cwd else self.cwd
        if background:
            limit = self._call_timeout(timeout) if timeout is not None else None
            log_path = f"{OUTPUT_DIR}/command-{uuid.uuid4().hex[:10]}.log"
            wrapped = _background_command(cmd, log_path)

            def start(sandbox: Sandbox) -> CommandResult:
                handle = sandbox.commands.run(
                    wrapped, background=True, cwd=workdir, timeout=limit or 0
                )
                handle.disconnect()
                return CommandResult(
                    command=cmd,
                    sandbox_id=sandbox.sandbox_id,
                    timeout=limit,
                    pid=handle.pid,
                    log_path=log_path,
                )

            with collect_notices() as notices:
                result = self._call(start, lifetime=self.sandbox_timeout)
            result.notice = " ".join(notices) or None
            return result

        limit = self._call_timeout(timeout)

        def op(sandbox: Sandbox) -> CommandResult:
            streams = _Streams(on_output)
            try:
                done = sandbox.commands.run(
                    cmd,
                    cwd=workdir,
                    timeout=limit,
                    on_stdout=streams.stdout,
                    on_stderr=streams.stderr,
                )
            except CommandExitException as exc:
                done = exc
            except TimeoutException as exc:
                if not isinstance(exc, SandboxNotRunningException) and self._probe_sync(sandbox):
                    return streams.timed_out_command(cmd, sandbox.sandbox_id, limit)
                raise _SandboxGone(str(exc)) from exc
            return _command_result(cmd, done, sandbox.sandbox_id, limit)

        with collect_notices() as notices:
            result = self._call(op, lifetime=self._lifetime_for(limit))
        result.notice = " ".join(notices) or None
        return result

    def read_file(self, path: str) -> bytes:
        """Read a file's bytes; relative paths are taken from ``cwd``.

        Raises:
            FileNotFoundError: If there is no such file.
        """
        target = self.resolve_path(path)

        def op(sandbox: Sandbox) -> bytes:
            try:
                return bytes(sandbox.files.read(target, format="bytes"))
            except FileNotFoundException as exc:
                raise FileNotFoundError(target) from exc

        return self._call(op, lifetime=self.sandbox_timeout)

    def write_file(self, path: str, data: str | bytes) -> str:
        """Write a file, creating parent directories; returns its absolute path."""
        target = self.resolve_path(path)

        def op(sandbox: Sandbox) -> str:
            return str(sandbox.files.write(target, data).path or target)

        return self._call(op, lifetime=self.sandbox_timeout)

    def file_info(self, path: str) -> FileEntry:
        """Stat one path.

        Raises:
            FileNotFoundError: If there is no such file or directory.
        """
        target = self.resolve_path(path)

        def op(sandbox: Sandbox) -> FileEntry:
            try:
                return _entry(sandbox.files.get_info(target))
            except FileNotFoundException as exc:
                raise FileNotFoundError(target) from exc

        return self._call(op, lifetime=self.sandbox_timeout)

    def list_files(self, path: str = ".", *, depth: int = 1) -> list[FileEntry]:
        """List a directory, ``depth`` levels deep, sorted by path.

        Raises:
            FileNotFoundError: If there is no such directory.
        """
        target = self.resolve_path(path)

        def op(sandbox: Sandbox) -> list[FileEntry]:
            try:
                entries = sandbox.files.list(target, depth=depth)
            except FileNotFoundException as exc:
                raise FileNotFoundError(target) from exc
            return sorted((_entry(e) for e in entries), key=lambda e: e.path)

        return self._call(op, lifetime=self.sandbox_timeout)

    def close(self, *, kill: bool | None = None) -> None:
        """Close the session and kill its sandbox.

        Args:
            kill: Kill the sandbox (``True``) or leave it to its E2B timeout (``False``). By
                default a sandbox the session created is killed and one it attached to is not.
        """
        sandbox_id, must_kill = self._mark_closed(kill)
        if sandbox_id is None:
            return
        if must_kill:
            try:
                Sandbox.kill(sandbox_id, **self.connection_options())
            except Exception:  # closing must not fail; the E2B timeout remains
                logger.warning("could not kill sandbox %s", sandbox_id, exc_info=True)
        self._emit([_closed_event(sandbox_id, must_kill)])

    def save_output(self, text: str) -> str:
        """Write ``text`` to a new file under ``/tmp/langchain_e2b`` and return its path."""
        return self.write_file(_output_path(), text)

    def __enter__(self) -> E2BSandboxSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- async shell -------------------------------------------------------------------------

    async def aensure_sandbox(self) -> AsyncSandbox:
        """Return the async SDK sandbox, creating or connecting to it if needed."""
        return (await self._async_handle())[0]

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            lock = self._async_locks.get(loop)
            if lock is None:
                lock = self._async_locks[loop] = asyncio.Lock()
            return lock

    async def _async_handle(self) -> tuple[AsyncSandbox, int]:
        loop = asyncio.get_running_loop()
        handle = self._async
        if (
            handle is not None
            and handle[0] == self._generation
            and handle[1] is loop
            and not self._closed
        ):
            return handle[2], handle[0]
        events: list[SessionEvent] = []
        async with self._async_lock():
            self._check_open()
            handle = self._async
            if handle is None or handle[0] != self._generation or handle[1] is not loop:
                if self._connection is None:
                    # Starting the local runtime blocks for a while: keep the loop free.
                    await asyncio.to_thread(self.connection_options)
                generation, sandbox = await self._open_async(events)
                handle = (generation, loop, sandbox)
                self._async = handle
        await self._aemit(events)
        return handle[2], handle[0]

    async def _open_async(self, events: list[SessionEvent]) -> tuple[int, AsyncSandbox]:
        sandbox_id = self._sandbox_id
        if sandbox_id is not None:
            try:
                sandbox = await AsyncSandbox.connect(
                    sandbox_id, timeout=self.sandbox_timeout, **self.connection_options()
                )
            except NotFoundException:
                return await self._create_async(events, "recreated", sandbox_id)
            except Exception as exc:
                raise self._backend_error(f"connect to sandbox {sandbox_id}", exc) from exc
            with self._lock:
                events.extend(self._attached())
                return self._generation, sandbox
        return await self._create_async(events, "created", None)

    async def _create_async(
        self, events: list[SessionEvent], kind: EventKind, expected: str | None
    ) -> tuple[int, AsyncSandbox]:
        try:
            sandbox = await AsyncSandbox.create(**self._create_kwargs())
        except E2BConfigError:
            raise
        except Exception as exc:
            raise self._backend_error(f"create a {self.template} sandbox", exc) from exc
        with self._lock:
            if self._sandbox_id == expected:
                events.append(self._adopt(sandbox.sandbox_id, kind))
                return self._generation, sandbox
            current = self._sandbox_id
        # A synchronous call moved the session to another sandbox meanwhile: use that one.
        await self._discard_async(sandbox.sandbox_id)
        assert current is not None
        other = await AsyncSandbox.connect(current, **self.connection_options())
        return self._generation, other

    async def _replace_async(self, failed_generation: int) -> None:
        events: list[SessionEvent] = []
        async with self._async_lock():
            self._check_open()
            if self._generation == failed_generation:
                old = self._sandbox_id
                generation, sandbox = await self._create_async(events, "recreated", old)
                self._async = (generation, asyncio.get_running_loop(), sandbox)
                if old is not None:
                    await self._discard_async(old)
            else:
                _note(RESTART_NOTICE)
        await self._aemit(events)

    async def _discard_async(self, sandbox_id: str) -> None:
        with contextlib.suppress(Exception):
            await AsyncSandbox.kill(sandbox_id, request_timeout=5, **self.connection_options())

    async def _aprobe(self, sandbox: AsyncSandbox) -> bool:
        try:
            return bool(await sandbox.is_running(request_timeout=10))
        except Exception:  # an unreachable sandbox counts as gone
            return False

    async def _ais_gone(self, sandbox: AsyncSandbox, exc: BaseException) -> bool:
        verdict = _is_gone_exception(exc)
        return (not await self._aprobe(sandbox)) if verdict is None else verdict

    async def _akeepalive(self, sandbox: AsyncSandbox, lifetime: float) -> None:
        seconds = self._keepalive_due(lifetime)
        if seconds is None:
            return
        try:
            await sandbox.set_timeout(seconds)
        except NotFoundException:
            raise
        except Exception:  # a failed push must not fail the call itself
            logger.warning("could not extend the timeout of sandbox %s", sandbox.sandbox_id)
            return
        self._expires_at = time.monotonic() + seconds

    async def _acall(self, op: Callable[[AsyncSandbox], Awaitable[T]], *, lifetime: float) -> T:
        for attempt in range(2):
            sandbox, generation = await self._async_handle()
            try:
                await self._akeepalive(sandbox, lifetime)
                value = await op(sandbox)
            except Exception as exc:
                if not await self._ais_gone(sandbox, exc):
                    raise
                if attempt:
                    raise E2BSandboxError(
                        "The sandbox stopped again right after it was recreated."
                    ) from exc
                await self._replace_async(generation)
                continue
            await self._akeepalive(sandbox, self.sandbox_timeout)
            return value
        raise AssertionError("unreachable")

    async def arun_code(
        self,
        code: str,
        *,
        language: str | None = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> CodeResult:
        """Async :meth:`run_code`; ``on_output`` may be a coroutine function."""
        limit = self._call_timeout(timeout)

        async def op(sandbox: AsyncSandbox) -> CodeResult:
            streams = _Streams(on_output)
            try:
                execution = await sandbox.run_code(
                    code,
                    language=language,
                    on_stdout=streams.astdout_message,
                    on_stderr=streams.astderr_message,
                    timeout=limit,
                )
            except TimeoutException as exc:
                if not isinstance(exc, SandboxNotRunningException) and await self._aprobe(sandbox):
                    return streams.timed_out_code(code, language, sandbox.sandbox_id, limit)
                raise _SandboxGone(str(exc)) from exc
            return _format.code_result(
                execution,
                code=code,
                language=language,
                sandbox_id=sandbox.sandbox_id,
                timeout=limit,
            )

        with collect_notices() as notices:
            result = await self._acall(op, lifetime=self._lifetime_for(limit))
        result.notice = " ".join(notices) or None
        self._history.append(result)
        return result

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
        workdir = self.resolve_path(cwd) if cwd else self.cwd
        if background:
            limit = self._call_timeout(timeout) if timeout is not None else None
            log_path = f"{OUTPUT_DIR}/command-{uuid.uuid4().hex[:10]}.log"
            wrapped = _background_command(cmd, log_path)

            async def start(sandbox: AsyncSandbox) -> CommandResult:
                handle = await sandbox.commands.run(
                    wrapped, background=True, cwd=workdir, timeout=limit or 0
                )
                await handle.disconnect()
                return CommandResult(
                    command=cmd,
                    sandbox_id=sandbox.sandbox_id,
                    timeout=limit,
                    pid=handle.pid,
                    log_path=log_path,
                )

            with collect_notices() as notices:
                result = await self._acall(start, lifetime=self.sandbox_timeout)
            result.notice = " ".join(notices) or None
            return result

        limit = self._call_timeout(timeout)

        async def op(sandbox: AsyncSandbox) -> CommandResult:
            streams = _Streams(on_output)
            try:
                done = await sandbox.commands.run(
                    cmd,
                    cwd=workdir,
                    timeout=limit,
                    on_stdout=streams.astdout,
                    on_stderr=streams.astderr,
                )
            except CommandExitException as exc:
                done = exc
            except TimeoutException as exc:
                if not isinstance(exc, SandboxNotRunningException) and await self._aprobe(sandbox):
                    return streams.timed_out_command(cmd, sandbox.sandbox_id, limit)
                raise _SandboxGone(str(exc)) from exc
            return _command_result(cmd, done, sandbox.sandbox_id, limit)

        with collect_notices() as notices:
            result = await self._acall(op, lifetime=self._lifetime_for(limit))
        result.notice = " ".join(notices) or None
        return result

    async def aread_file(self, path: str) -> bytes:
        """Async :meth:`read_file`."""
        target = self.resolve_path(path)

        async def op(sandbox: AsyncSandbox) -> bytes:
            try:
                return bytes(await sandbox.files.read(target, format="bytes"))
            except FileNotFoundException as exc:
                raise FileNotFoundError(target) from exc

        return await self._acall(op, lifetime=self.sandbox_timeout)

    async def awrite_file(self, path: str, data: str | bytes) -> str:
        """Async :meth:`write_file`."""
        target = self.resolve_path(path)

        async def op(sandbox: AsyncSandbox) -> str:
            return str((await sandbox.files.write(target, data)).path or target)

        return await self._acall(op, lifetime=self.sandbox_timeout)

    async def afile_info(self, path: str) -> FileEntry:
        """Async :meth:`file_info`."""
        target = self.resolve_path(path)

        async def op(sandbox: AsyncSandbox) -> FileEntry:
            try:
                return _entry(await sandbox.files.get_info(target))
            except FileNotFoundException as exc:
                raise FileNotFoundError(target) from exc

        return await self._acall(op, lifetime=self.sandbox_timeout)

    async def alist_files(self, path: str = ".", *, depth: int = 1) -> list[FileEntry]:
        """Async :meth:`list_files`."""
        target = self.resolve_path(path)

        async def op(sandbox: AsyncSandbox) -> list[FileEntry]:
            try:
                entries = await sandbox.files.list(target, depth=depth)
            except FileNotFoundException as exc:
                raise FileNotFoundError(target) from exc
            return sorted((_entry(e) for e in entries), key=lambda e: e.path)

        return await self._acall(op, lifetime=self.sandbox_timeout)

    async def asave_output(self, text: str) -> str:
        """Async :meth:`save_output`."""
        return await self.awrite_file(_output_path(), text)

    async def aclose(self, *, kill: bool | None = None) -> None:
        """Async :meth:`close`."""
        sandbox_id, must_kill = self._mark_closed(kill)
        if sandbox_id is None:
            return
        if must_kill:
            try:
                await AsyncSandbox.kill(sandbox_id, **self.connection_options())
            except Exception:  # closing must not fail; the E2B timeout remains
                logger.warning("could not kill sandbox %s", sandbox_id, exc_info=True)
        await self._aemit([_closed_event(sandbox_id, must_kill)])

    async def __aenter__(self) -> E2BSandboxSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Streams:
    """Collects output chunks as they arrive and forwards them to ``on_output``."""

    def __init__(self, on_output: OutputCallback | None) -> None:
        self.on_output = on_output
        self.out: list[str] = []
        self.err: list[str] = []

    def _push(self, stream: str, text: str) -> Any:
        (self.out if stream == "stdout" else self.err).append(text)
        return self.on_output(stream, text) if self.on_output is not None else None

    def stdout(self, text: str) -> None:
        self._push("stdout", text)

    def stderr(self, text: str) -> None:
        self._push("stderr", text)

    def stdout_message(self, message: Any) -> None:
        self._push("stdout", str(message.line))

    def stderr_message(self, message: Any) -> None:
        self._push("stderr", str(message.line))

    async def astdout(self, text: str) -> None:
        await _maybe_await(self._push("stdout", text))

    async def astderr(self, text: str) -> None:
        await _maybe_await(self._push("stderr", text))

    async def astdout_message(self, message: Any) -> None:
        await _maybe_await(self._push("stdout", str(message.line)))

    async def astderr_message(self, message: Any) -> None:
        await _maybe_await(self._push("stderr", str(message.line)))

    def timed_out_code(
        self, code: str, language: str | None, sandbox_id: str, limit: float
    ) -> CodeResult:
        return CodeResult(
            code=code,
            language=language,
            stdout="".join(self.out),
            stderr="".join(self.err),
            sandbox_id=sandbox_id,
            timed_out=True,
            timeout=limit,
        )

    def timed_out_command(self, cmd: str, sandbox_id: str, limit: float) -> CommandResult:
        return CommandResult(
            command=cmd,
            stdout="".join(self.out),
            stderr="".join(self.err),
            sandbox_id=sandbox_id,
            timed_out=True,
            timeout=limit,
        )


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


def _command_result(cmd: str, done: Any, sandbox_id: str, limit: float) -> CommandResult:
    return CommandResult(
        command=cmd,
        stdout=done.stdout or "",
        stderr=done.stderr or "",
        exit_code=done.exit_code,
        error=done.error or None,
        sandbox_id=sandbox_id,
        timeout=limit,
    )


def _background_command(cmd: str, log_path: str) -> str:
    # `exec` redirects the shell itself, so the pid the SDK reports is the command's own process
    # (bash execs a final simple command) and `kill <pid>` stops it.
    return f"mkdir -p {OUTPUT_DIR} && exec >{log_path} 2>&1\n{cmd}"


def _output_path() -> str:
    return f"{OUTPUT_DIR}/output-{uuid.uuid4().hex[:10]}.txt"


def _entry(info: Any) -> FileEntry:
    return FileEntry(
        path=str(info.path),
        name=str(info.name),
        is_dir=info.type == FileType.DIR,
        size=int(getattr(info, "size", 0) or 0),
    )


def _closed_event(sandbox_id: str, killed: bool) -> SessionEvent:
    verb = "Killed" if killed else "Detached from"
    return SessionEvent("closed", sandbox_id, f"{verb} sandbox {sandbox_id}.")


__all__ = [
    "DEFAULT_CWD",
    "METADATA_TAG",
    "OUTPUT_DIR",
    "RESTART_NOTICE",
    "CodeResult",
    "CommandResult",
    "E2BSandboxSession",
    "FileEntry",
    "Listener",
    "OutputCallback",
    "SessionEvent",
    "SessionProvider",
    "collect_notices",
]
