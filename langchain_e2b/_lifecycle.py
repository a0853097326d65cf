"""The session's core: which sandbox is current, moving to a new one, keep-alive, and events.

One locking rule holds for threads and event loops alike. The state lives behind one
``threading.Lock`` that is held only for changes that do no I/O, never across a call. Moving the
session to a new sandbox (create, or replace one that is gone) is done by one caller at a time:
it publishes a ``concurrent.futures.Future`` that every other caller, on any thread or event loop,
waits for before looking again. Each caller kind keeps its own SDK handle (blocking callers share
one; each event loop has its own), tagged with the generation it belongs to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from e2b import NotFoundException
from e2b_code_interpreter import AsyncSandbox, Sandbox

from langchain_e2b import _backend, _sdk
from langchain_e2b._backend import SandboxBackend
from langchain_e2b._steps import Blocking, Call, Emit, Steps, Wait
from langchain_e2b.errors import E2BSessionClosedError

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from langchain_e2b.session import E2BSandboxSession

logger = logging.getLogger("langchain_e2b.session")

T = TypeVar("T")

RESTART_NOTICE = (
    "Note: the sandbox had stopped (it expired or was killed) and was restarted, "
    "so all earlier variables, imports, installed packages and files are gone."
)
EMBEDDED_ELSEWHERE = (
    "it ran on the local runtime embedded in another process, and such sandboxes end with the "
    "process that started them"
)


def restart_notice(cause: str | None = None) -> str:
    """The sentence the model reads first after a restart; ``cause`` replaces the generic one."""
    if cause is None:
        return RESTART_NOTICE
    return RESTART_NOTICE.replace("(it expired or was killed)", f"({cause})")


EventKind = Literal["created", "recreated", "connected", "closed"]


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


class _SyncKey:
    """Key of the blocking callers' SDK handle (event loops key their own)."""


_SYNC_KEY = _SyncKey()


@dataclass(frozen=True)
class Mode:
    """Which SDK flavour an operation runs with, and whose handle it uses."""

    key: object
    cls: Any  # Sandbox or AsyncSandbox: same class methods, blocking or awaitable


def sync_mode() -> Mode:
    """The mode of blocking callers."""
    return Mode(_SYNC_KEY, Sandbox)


def async_mode() -> Mode:
    """The mode of callers in the running event loop."""
    return Mode(asyncio.get_running_loop(), AsyncSandbox)


class _Spec(Protocol):
    """What the core reads from its session (live, so later changes apply)."""

    template: str
    sandbox_timeout: int
    on_timeout: Literal["kill", "pause"]
    metadata: dict[str, str]
    envs: dict[str, str]

    @property
    def resolved_backend(self) -> SandboxBackend | None: ...

    def connection_options(self) -> dict[str, str]: ...


class Lifecycle:
    """The current sandbox of one session and every step that changes it."""

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.sandbox_id: str | None = None
        self.generation = 0  # bumped whenever the session moves to a new sandbox
        self.closed = False
        self._owned = False  # whether close() kills the sandbox
        self._announce_connect = False
        self._expires_at = 0.0  # monotonic estimate of the sandbox's expiry
        self._last_notice = RESTART_NOTICE
        self._moving: concurrent.futures.Future[None] | None = None  # a create in progress
        self._moving_owner = 0
        self._handles: weakref.WeakKeyDictionary[object, tuple[int, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _start_moving(self) -> concurrent.futures.Future[None]:
        """Claim the move to a new sandbox (under the lock)."""
        self._moving = concurrent.futures.Future()
        self._moving_owner = threading.get_ident()
        return self._moving

    def attach(self, sandbox_id: str) -> None:
        """Start from an existing sandbox (connected to lazily, announced once)."""
        with self._lock:
            self.sandbox_id = sandbox_id
            self.generation = 1
            self._announce_connect = True

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event (added once per callable)."""
        with self._lock:
            if listener not in self.listeners:
                self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with self._lock, contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    def emit(self, *events: SessionEvent) -> Emit:
        """The step that delivers ``events`` to the listeners."""
        return Emit(list(self.listeners), events)

    def check_open(self) -> None:
        """Refuse every call after ``close()``."""
        if self.closed:
            raise E2BSessionClosedError(
                "This E2BSandboxSession is closed; create a new session to run more code."
            )

    def _adopt(self, sandbox_id: str, kind: EventKind, cause: str | None) -> SessionEvent:
        """Make a sandbox this session created the current one."""
        if self.sandbox_id is not None and self._owned:
            _backend.unregister(self.sandbox_id)
        self.sandbox_id = sandbox_id
        self.generation += 1
        self._owned = True
        self._announce_connect = False
        self._expires_at = time.monotonic() + self._spec.sandbox_timeout
        _backend.register(sandbox_id, self._spec.connection_options())
        if kind == "recreated":
            notice = self._last_notice = restart_notice(cause)
            _note(notice)
            return SessionEvent(kind, sandbox_id, notice)
        return SessionEvent(
            kind, sandbox_id, f"Created sandbox {sandbox_id} ({self._spec.template})."
        )

    def _attached(self) -> list[SessionEvent]:
        self._expires_at = max(self._expires_at, time.monotonic() + self._spec.sandbox_timeout)
        if not self._announce_connect or self.sandbox_id is None:
            return []
        self._announce_connect = False
        sid = self.sandbox_id
        return [SessionEvent("connected", sid, f"Connected to existing sandbox {sid}.")]

    def _gone_cause(self, sandbox_id: str, *, attached: bool) -> str | None:
        """Why a sandbox is gone, when the session can know it (else the notice stays generic)."""
        backend = self._spec.resolved_backend
        embedded = attached and backend is not None and backend.dies_with_process
        if embedded and not _backend.created_here(sandbox_id):
            return EMBEDDED_ELSEWHERE
        return None

    def mark_closed(self, kill: bool | None) -> tuple[str | None, bool]:
        """Close the session (once); return the sandbox to release and whether to kill it."""
        with self._lock:
            if self.closed:
                return None, False
            self.closed = True
            self._handles.clear()
            if self.sandbox_id is not None and self._owned:
                _backend.unregister(self.sandbox_id)
            return self.sandbox_id, self._owned if kill is None else kill

    # --- create / connect / replace, written once --------------------------------------------

    def handle(self, mode: Mode) -> Steps[tuple[Any, int]]:
        """The SDK sandbox for this caller, creating or connecting as needed."""
        while True:
            create: concurrent.futures.Future[None] | None = None
            with self._lock:
                self.check_open()
                moving, generation, sandbox_id = self._moving, self.generation, self.sandbox_id
                owner, cached = self._moving_owner, self._handles.get(mode.key)
                # A sandbox that pauses at its timeout and may have reached it is connected to
                # again: connect resumes it (a paused sandbox's address does not answer).
                fresh = self._spec.on_timeout == "kill" or time.monotonic() < self._expires_at
                if moving is None and cached is not None and cached[0] == generation and fresh:
                    return cached[1], generation
                if moving is None and sandbox_id is None:
                    create = self._start_moving()
            if create is not None:
                yield from self._create(mode, create, "created", None, None)
                continue
            if moving is not None:
                yield Wait(moving, owner)
                continue
            assert sandbox_id is not None
            options = yield Blocking(self._spec.connection_options)
            try:
                connect = partial(mode.cls.connect, sandbox_id, **options)
                sandbox = yield Call(partial(connect, timeout=self._spec.sandbox_timeout))
            except NotFoundException:
                yield from self._replace(mode, generation, attached=True)
                continue
            except Exception as exc:
                action = f"connect to sandbox {sandbox_id}"
                raise _sdk.backend_error(action, exc, self._spec.resolved_backend) from exc
            with self._lock:
                if self.generation != generation or self.closed:
                    continue
                self._handles[mode.key] = (generation, sandbox)
                events = self._attached()
            yield self.emit(*events)
            return sandbox, generation

    def _create(
        self,
        mode: Mode,
        moving: concurrent.futures.Future[None],
        kind: EventKind,
        old: str | None,
        cause: str | None,
    ) -> Steps[None]:
        """Create a sandbox and make it current; ``moving`` tells the waiting callers when done."""
        try:
            options = yield Blocking(self._spec.connection_options)
            kwargs = {
                "template": self._spec.template,
                "timeout": self._spec.sandbox_timeout,
                "metadata": dict(self._spec.metadata),
                "envs": dict(self._spec.envs) or None,
                **options,
            }
            if self._spec.on_timeout == "pause":
                # Only when asked: the default leaves the request as every SDK release sends it.
                kwargs["lifecycle"] = {"on_timeout": "pause"}
            try:
                sandbox = yield Call(lambda: mode.cls.create(**kwargs))
            except Exception as exc:
                action = f"create a {self._spec.template} sandbox"
                raise _sdk.backend_error(action, exc, self._spec.resolved_backend) from exc
            with self._lock:
                self._moving = None
                if self.closed:  # closed while creating: this sandbox must not outlive us
                    closed = True
                else:
                    closed = False
                    event = self._adopt(sandbox.sandbox_id, kind, cause)
                    self._handles.clear()
                    self._handles[mode.key] = (self.generation, sandbox)
            moving.set_result(None)
        except BaseException as exc:
            with self._lock:
                self._moving = None
            if isinstance(exc, Exception):
                moving.set_exception(exc)  # the waiters fail the same way
            else:
                moving.set_result(None)  # cancelled or interrupted: a waiter takes over
            raise
        for stale in [sandbox.sandbox_id] if closed else [old] if old else []:
            with contextlib.suppress(Exception):  # best effort: it may already be gone
                yield Call(partial(mode.cls.kill, stale, request_timeout=5, **options))
        if closed:
            self.check_open()
        yield self.emit(event)

    def _replace(self, mode: Mode, failed: int, *, attached: bool = False) -> Steps[None]:
        """Replace the sandbox of generation ``failed``, unless another caller already did."""
        while True:
            with self._lock:
                self.check_open()
                moving, generation, old = self._moving, self.generation, self.sandbox_id
                owner = self._moving_owner
                if moving is None and generation == failed:
                    moving = self._start_moving()
                    break
            if moving is not None:
                yield Wait(moving, owner)
                continue
            _note(self._last_notice)  # another call replaced it: this call lost the state too
            return
        cause = self._gone_cause(old, attached=attached) if old else None
        yield from self._create(mode, moving, "recreated", old, cause)

    def _resume(self, mode: Mode, generation: int) -> Steps[bool]:
        """Whether a sandbox that stopped answering was paused at its timeout, and is resumed.

        ``connect`` resumes a paused sandbox with its state; a sandbox that is really gone
        answers not found, and the caller replaces it.
        """
        with self._lock:
            sandbox_id = self.sandbox_id
            if self._spec.on_timeout != "pause" or self.generation != generation:
                return False
        if sandbox_id is None:
            return False
        options = yield Blocking(self._spec.connection_options)
        try:
            connect = partial(mode.cls.connect, sandbox_id, **options)
            sandbox = yield Call(partial(connect, timeout=self._spec.sandbox_timeout))
        except Exception:  # gone (or unreachable): replacing it says so
            return False
        with self._lock:
            if self.generation != generation or self.closed:
                return False
            self._handles.clear()
            self._handles[mode.key] = (generation, sandbox)
            self._expires_at = time.monotonic() + self._spec.sandbox_timeout
        logger.info("resumed paused sandbox %s", sandbox_id)
        return True

    def _keepalive(self, sandbox: Any, lifetime: float) -> Steps[None]:
        with self._lock:
            seconds = _sdk.keepalive_due(self._expires_at, lifetime, self._spec.sandbox_timeout)
        if seconds is None:
            return
        try:
            yield Call(lambda: sandbox.set_timeout(seconds))
        except NotFoundException:
            raise
        except Exception:  # a failed push must not fail the call itself
            logger.warning("could not extend the timeout of sandbox %s", sandbox.sandbox_id)
            return
        with self._lock:
            self._expires_at = time.monotonic() + seconds

    def on_sandbox(
        self,
        mode: Mode,
        op: _sdk.Attempt[T],
        *,
        lifetime: float,
        action: str,
        fixable: _sdk.Fixable | None,
    ) -> Steps[T]:
        """Run ``op`` on the sandbox; if it is gone, replace it once and run ``op`` again."""
        for attempt in range(2):
            sandbox, generation = yield from self.handle(mode)
            try:
                yield from self._keepalive(sandbox, lifetime)
                value = yield from op(sandbox)
            except Exception as exc:
                if not (yield from _sdk.is_gone(sandbox, exc, self._spec.resolved_backend)):
                    mapped = _sdk.map_error(exc, action, self._spec.resolved_backend, fixable)
                    if mapped is exc:
                        raise
                    raise mapped from exc
                if attempt:
                    raise _sdk.gone_again(exc, self._spec.resolved_backend) from exc
                if (yield from self._resume(mode, generation)):
                    continue  # it was paused and kept its state: nothing to tell
                yield from self._replace(mode, generation)
                continue
            yield from self._keepalive(sandbox, self._spec.sandbox_timeout)
            return value
        raise AssertionError("unreachable")

    def close(self, mode: Mode, kill: bool | None) -> Steps[None]:
        """Close (once): kill the sandbox if asked (by default if it is ours), then tell."""
        sandbox_id, must_kill = self.mark_closed(kill)
        if sandbox_id is None:
            return
        if must_kill:
            options = self._spec.connection_options()
            try:
                yield Call(lambda: mode.cls.kill(sandbox_id, **options))
            except Exception:  # closing must not fail; the E2B timeout remains
                logger.warning("could not kill sandbox %s", sandbox_id, exc_info=True)
        verb = "Killed" if must_kill else "Detached from"
        yield self.emit(SessionEvent("closed", sandbox_id, f"{verb} sandbox {sandbox_id}."))
