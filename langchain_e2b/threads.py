"""One sandbox per LangGraph thread, durable across processes.

:class:`E2BThreadSessions` is a session provider: give it to the toolkit (or any tool) in place of
a session, and each tool call uses the sandbox of the LangGraph thread it runs in
(``config["configurable"]["thread_id"]``). The thread's sandbox id is recorded in the graph's
``BaseStore`` when there is one, so another process (or another provider) with the same store and
thread reconnects to the same sandbox instead of creating a new one; if that sandbox is gone, a
new one is created and the tool's output says that the earlier state is lost. Reuse across
processes needs a backend they share (``langchain-e2b local serve`` or the E2B cloud): sandboxes
of the local runtime embedded in a process end with that process, and a warning says so when
their ids are recorded in a store.

Idle policy (``idle_policy``): a thread's sandbox gets an E2B timeout of ``idle_timeout`` seconds
that every call pushes forward, so the backend itself acts on a thread that has been idle that
long, even if this process has died. With ``"kill"`` (the default) it kills the sandbox, and the
next call in that thread creates a new one and says that the earlier state is lost. With
``"pause"`` it pauses the sandbox (E2B's ``lifecycle={"on_timeout": "pause"}``): the sandbox keeps
its variables, files and processes without using CPU (on E2B cloud, without paying for
compute), and the next call in that thread, in this process or another one with the same store,
resumes the same sandbox. Paused sandboxes are kept until they are killed (``close_thread``,
``close``, or the backend's own limits; the local runtime kills them when it stops).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.store.base import BaseStore, Item

from langchain_e2b.errors import E2BConfigError
from langchain_e2b.session import E2BSandboxSession, SessionEvent

logger = logging.getLogger(__name__)

STORE_NAMESPACE = ("langchain_e2b", "threads")
"""Store namespace of the thread -> sandbox records (key: the thread id)."""
THREAD_METADATA_KEY = "thread_id"
"""Sandbox metadata key holding the LangGraph thread id."""
DEFAULT_IDLE_TIMEOUT = 600


def thread_id_of(config: RunnableConfig | None) -> str | None:
    """The LangGraph thread id in ``config``, or ``None`` outside a thread."""
    configurable = (config or {}).get("configurable") or {}
    value = configurable.get("thread_id")
    return None if value is None else str(value)


def _graph_store() -> BaseStore | None:
    """The store of the graph the current call runs in (``compile(store=...)``), if any."""
    try:
        store = get_store()
    except (RuntimeError, KeyError):  # not inside a graph run
        return None
    return store if isinstance(store, BaseStore) else None


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class E2BThreadSessions:
    """Sessions per LangGraph thread: a session provider for tools and toolkits.

    Each ``thread_id`` gets its own sandbox, tagged with the thread id in its metadata; threads
    never share one. Calls without a thread id share one session of this provider. Parallel tool
    calls of one step get the same session, which creates a single sandbox.

    Example:
        .. code-block:: python

            from langgraph.checkpoint.memory import InMemorySaver
            from langgraph.store.memory import InMemoryStore
            from langchain.agents import create_agent
            from langchain_e2b import E2BSandboxToolkit
            from langchain_e2b.threads import E2BThreadSessions

            sessions = E2BThreadSessions(idle_timeout=900)
            tools = E2BSandboxToolkit(session=sessions).get_tools()
            agent = create_agent(
                model, tools, checkpointer=InMemorySaver(), store=InMemoryStore()
            )
            agent.invoke(inputs, {"configurable": {"thread_id": "user-42"}})
            sessions.close()  # kill every thread's sandbox

    Args:
        store: Where thread -> sandbox ids are recorded. By default the store of the graph the
            call runs in (``compile(store=...)`` / ``create_agent(store=...)``), if any.
        idle_timeout: Seconds of inactivity after which a thread's sandbox is killed or paused
            (it becomes the sandbox's E2B timeout). Sessions idle that long are also dropped
            from memory.
        idle_policy: What happens to a sandbox idle for ``idle_timeout``: ``"kill"`` (the
            default; the thread's next call starts a new sandbox and says the state is lost) or
            ``"pause"`` (its state is kept; the thread's next call resumes it).
        namespace: Store namespace of the records.
        **session_options: Passed to every :class:`E2BSandboxSession` (``template``, ``envs``,
            ``metadata``, ``api_key``, ``api_url``, ``sandbox_url``, ``cwd``, ``timeout``, ...).
    """

    def __init__(
        self,
        *,
        store: BaseStore | None = None,
        idle_timeout: int = DEFAULT_IDLE_TIMEOUT,
        idle_policy: Literal["kill", "pause"] = "kill",
        namespace: tuple[str, ...] = STORE_NAMESPACE,
        **session_options: Any,
    ) -> None:
        if "sandbox_timeout" in session_options:
            raise E2BConfigError(
                "E2BThreadSessions sets each sandbox's timeout from idle_timeout; "
                "pass idle_timeout=... instead of sandbox_timeout."
            )
        if "on_timeout" in session_options:
            raise E2BConfigError(
                "E2BThreadSessions sets each sandbox's on_timeout from idle_policy; "
                "pass idle_policy='kill' or idle_policy='pause' instead of on_timeout."
            )
        if idle_timeout < 1:
            raise E2BConfigError(f"idle_timeout must be at least 1 second, got {idle_timeout}")
        if idle_policy not in ("kill", "pause"):
            raise E2BConfigError(f"idle_policy must be 'kill' or 'pause', got {idle_policy!r}")
        self.store = store
        self.idle_timeout = int(idle_timeout)
        self.idle_policy: Literal["kill", "pause"] = idle_policy
        self.namespace = tuple(namespace)
        self.session_options = dict(session_options)
        self._lock = threading.Lock()
        self._thread_locks: dict[str | None, threading.Lock] = {}
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._sessions: dict[str | None, E2BSandboxSession] = {}
        self._last_used: dict[str | None, float] = {}
        # Last sandbox id seen per thread, kept after a session is dropped, so that a thread whose
        # sandbox was killed is told so even without a store.
        self._known: dict[str | None, str] = {}
        # Threads whose sandbox id is in a store: their sandboxes outlive this process.
        self._persisted: set[str] = set()
        self._stores: dict[str | None, BaseStore | None] = {}
        self._closed = False
        self._warned_embedded = False
        _PROVIDERS.add(self)

    # --- session-provider protocol -----------------------------------------------------------

    def get(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Return the session of the thread ``config`` belongs to (for a synchronous call)."""
        thread_id = thread_id_of(config)
        session = self._cached(thread_id)
        if session is None:
            with self._thread_lock(thread_id):
                session = self._cached(thread_id)
                if session is None:
                    store = self._store()
                    stored = self._read(store, thread_id)
                    session = self._install(thread_id, stored, store)
        self._sync_record(thread_id, session)
        return session

    async def aget(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        """Return the session of the thread ``config`` belongs to (for an asynchronous call)."""
        thread_id = thread_id_of(config)
        session = self._cached(thread_id)
        if session is None:
            async with self._async_lock():
                session = self._cached(thread_id)
                if session is None:
                    store = self._store()
                    stored = await self._aread(store, thread_id)
                    session = self._install(thread_id, stored, store)
        await self._async_record(thread_id, session)
        return session

    # --- thread management -------------------------------------------------------------------

    def session_for(self, thread_id: str | None) -> E2BSandboxSession | None:
        """The session this provider holds for ``thread_id``, if any (no I/O)."""
        with self._lock:
            return self._sessions.get(thread_id)

    def close_thread(self, thread_id: str | None, *, kill: bool = True) -> None:
        """Drop the thread's session and, by default, kill its sandbox.

        The thread keeps its record, so its next call starts a new sandbox and says that the
        earlier state is gone.
        """
        session = self._forget(thread_id, kill=kill)
        if session is not None:
            session.close(kill=kill)

    async def aclose_thread(self, thread_id: str | None, *, kill: bool = True) -> None:
        """Async :meth:`close_thread`."""
        session = self._forget(thread_id, kill=kill)
        if session is not None:
            await session.aclose(kill=kill)

    def close(self) -> None:
        """Kill every thread's sandbox held by this provider and stop handing out sessions."""
        for thread_id in self._drain():
            self.close_thread(thread_id)

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await asyncio.gather(*(self.aclose_thread(t) for t in self._drain()))

    def __enter__(self) -> E2BThreadSessions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> E2BThreadSessions:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _forget(self, thread_id: str | None, *, kill: bool) -> E2BSandboxSession | None:
        with self._lock:
            session = self._sessions.pop(thread_id, None)
            self._last_used.pop(thread_id, None)
            if thread_id is not None and kill:
                self._persisted.discard(thread_id)
        return session

    def _drain(self) -> list[str | None]:
        with self._lock:
            self._closed = True
            return list(self._sessions)

    def _detach_persisted(self) -> None:
        """At exit: leave stored threads' sandboxes to their idle timeout, for a later process."""
        with self._lock:
            sessions = [s for t, s in self._sessions.items() if t in self._persisted]
        for session in sessions:
            with contextlib.suppress(Exception):
                session.close(kill=False)

    # --- internals ---------------------------------------------------------------------------

    def _cached(self, thread_id: str | None) -> E2BSandboxSession | None:
        now = time.monotonic()
        stale: list[E2BSandboxSession] = []
        with self._lock:
            if self._closed:
                raise E2BConfigError("This E2BThreadSessions was closed; create a new one.")
            for other, used in list(self._last_used.items()):
                if other != thread_id and now - used > self.idle_timeout:
                    stale.append(self._sessions.pop(other))
                    del self._last_used[other]
            session = self._sessions.get(thread_id)
            if session is not None and session.closed:
                del self._sessions[thread_id]
                session = None
            if session is not None:
                self._last_used[thread_id] = now
        # The backend kills or pauses these sandboxes at their idle timeout; just forget them.
        for old in stale:
            with contextlib.suppress(Exception):
                old.close(kill=False)
        return session

    def _thread_lock(self, thread_id: str | None) -> threading.Lock:
        with self._lock:
            return self._thread_locks.setdefault(thread_id, threading.Lock())

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            lock = self._async_locks.get(loop)
            if lock is None:
                lock = self._async_locks[loop] = asyncio.Lock()
            return lock

    def _store(self) -> BaseStore | None:
        return self.store if self.store is not None else _graph_store()

    def _read(self, store: BaseStore | None, thread_id: str | None) -> str | None:
        item = None
        if store is not None and thread_id is not None:
            item = store.get(self.namespace, thread_id)
        return self._sandbox_of(thread_id, item)

    async def _aread(self, store: BaseStore | None, thread_id: str | None) -> str | None:
        item = None
        if store is not None and thread_id is not None:
            item = await store.aget(self.namespace, thread_id)
        return self._sandbox_of(thread_id, item)

    def _sandbox_of(self, thread_id: str | None, item: Item | None) -> str | None:
        """The thread's sandbox id: from its store record, else the last one seen here."""
        if item is not None and item.value.get("sandbox_id"):
            return str(item.value["sandbox_id"])
        return self._known.get(thread_id)

    def _install(
        self, thread_id: str | None, sandbox_id: str | None, store: BaseStore | None
    ) -> E2BSandboxSession:
        metadata = dict(self.session_options.get("metadata") or {})
        if thread_id is not None:
            metadata[THREAD_METADATA_KEY] = thread_id
        options = {
            **self.session_options,
            "metadata": metadata,
            "sandbox_timeout": self.idle_timeout,
            "on_timeout": self.idle_policy,
        }
        if sandbox_id is None:
            session = E2BSandboxSession(**options)
        else:
            session = E2BSandboxSession.connect(sandbox_id, **options)
        session.add_listener(self._recorder(thread_id, store, session))
        with self._lock:
            self._sessions[thread_id] = session
            self._last_used[thread_id] = time.monotonic()
            if sandbox_id is not None:
                self._known[thread_id] = sandbox_id
            self._stores[thread_id] = store
            if store is not None and thread_id is not None:
                self._persisted.add(thread_id)
        return session

    def _recorder(
        self, thread_id: str | None, store: BaseStore | None, session: E2BSandboxSession
    ) -> Callable[[SessionEvent], Awaitable[None] | None]:
        """A session listener that records the thread's new sandbox as soon as it exists."""

        def record(event: SessionEvent) -> Awaitable[None] | None:
            if event.kind not in ("created", "recreated"):
                return None
            with self._lock:
                self._known[thread_id] = event.sandbox_id
            if store is None or thread_id is None:
                return None
            self._warn_if_embedded(session)
            # On the async path the returned coroutine is awaited; an async-only store must not
            # be called synchronously from inside an event loop.
            if _in_event_loop():
                return store.aput(self.namespace, thread_id, self._record(event.sandbox_id))
            store.put(self.namespace, thread_id, self._record(event.sandbox_id))
            return None

        return record

    def _warn_if_embedded(self, session: E2BSandboxSession) -> None:
        """Say once that recorded sandboxes will not outlive this process on its own runtime."""
        backend = session.resolved_backend
        if backend is None or not backend.dies_with_process:
            return
        with self._lock:
            if self._warned_embedded:
                return
            self._warned_embedded = True
        logger.warning(
            "Thread sandboxes are recorded in the graph's store, but they run on the local "
            "runtime embedded in this process, which ends with it: another process with the "
            "same store will find them gone and start new ones (its results will say the "
            "earlier state is lost). To reuse a thread's sandbox across processes, point every "
            "process at one shared backend: `langchain-e2b local serve` (then set E2B_API_URL, "
            "E2B_SANDBOX_URL and E2B_API_KEY as it prints) or the E2B cloud (E2B_API_KEY)."
        )

    def _record(self, sandbox_id: str) -> dict[str, Any]:
        return {
            "sandbox_id": sandbox_id,
            "updated_at": datetime.now(timezone.utc).isoformat(),
        }

    def _stale_record(self, thread_id: str | None, session: E2BSandboxSession) -> str | None:
        """The session's sandbox id if its record is behind (a listener's write was skipped)."""
        sandbox_id = session.sandbox_id
        if sandbox_id is None or thread_id is None:
            return None
        with self._lock:
            if self._known.get(thread_id) == sandbox_id:
                return None
            self._known[thread_id] = sandbox_id
        return sandbox_id

    def _sync_record(self, thread_id: str | None, session: E2BSandboxSession) -> None:
        store = self._stores.get(thread_id)
        sandbox_id = self._stale_record(thread_id, session)
        if sandbox_id is not None and store is not None and thread_id is not None:
            store.put(self.namespace, thread_id, self._record(sandbox_id))

    async def _async_record(self, thread_id: str | None, session: E2BSandboxSession) -> None:
        store = self._stores.get(thread_id)
        sandbox_id = self._stale_record(thread_id, session)
        if sandbox_id is not None and store is not None and thread_id is not None:
            await store.aput(self.namespace, thread_id, self._record(sandbox_id))


_PROVIDERS: weakref.WeakSet[E2BThreadSessions] = weakref.WeakSet()


@atexit.register
def _detach_at_exit() -> None:
    # Registered after the session module's own exit hook, so it runs first: sandboxes whose ids
    # are in a store are taken off the kill-at-exit list and live on until their idle timeout.
    for provider in list(_PROVIDERS):
        provider._detach_persisted()


__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "STORE_NAMESPACE",
    "THREAD_METADATA_KEY",
    "E2BThreadSessions",
    "thread_id_of",
]
