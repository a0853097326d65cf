"""Parallel tool calls that share a sandbox run in the order the model wrote them.

A model that makes several tool calls in one message means them as a sequence: a cell uses what
the cell before it defined. LangGraph's ``ToolNode`` runs the calls of one message at the same
time (a thread pool when synchronous, ``asyncio.gather`` when asynchronous; ``create_agent`` sends
each call as its own task), so they reach the kernel in whatever order the scheduler picks.

Each call therefore takes a turn in its message's *group*: the calls of that message that go to
the same sandbox (same session provider and LangGraph thread), in the message's order. A call
waits until every earlier member has finished. The group is read from the graph state that
``ToolNode`` injects (``ToolRuntime``); a tool called without it (directly, outside a graph) is
not ordered.

An earlier member that never reaches the tool (a middleware answered it without calling the
tool, or it already ran before a resume) must not block the others forever: a call waits at most
:data:`ARRIVAL_GRACE` seconds for an earlier member to *start*; one that has started is waited
for until it finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

ARRIVAL_GRACE = 5.0
"""Seconds a call waits for an earlier call of its group that has not started yet."""
_FORGET_AFTER = 600.0
"""A group untouched this long (some member never came) is dropped."""

_LOCK = threading.Lock()
_CHANGED = threading.Condition(_LOCK)
_GROUPS: dict[tuple[Any, ...], _Group] = {}


class _Group:
    """The calls of one model message that go to one sandbox, in the message's order."""

    def __init__(self, members: tuple[str, ...]) -> None:
        self.members = members
        self.started: set[str] = set()
        self.finished: set[str] = set()  # finished, or given up on
        self.touched = time.monotonic()
        self.async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


class Turn:
    """One call's place in its group: wait for it, then release it when the call is done."""

    def __init__(self, key: tuple[Any, ...], members: tuple[str, ...], call_id: str) -> None:
        self.key = key
        self.call_id = call_id
        self.earlier = members[: members.index(call_id)]
        self.deadline = 0.0
        with _LOCK:
            now = time.monotonic()
            for stale in [k for k, g in _GROUPS.items() if now - g.touched > _FORGET_AFTER]:
                del _GROUPS[stale]
            group = _GROUPS.get(key)
            if group is None:
                group = _GROUPS[key] = _Group(members)
            self.group = group

    def _start(self) -> None:
        # Under _LOCK.
        self.group.started.add(self.call_id)
        self.group.touched = time.monotonic()
        self.deadline = time.monotonic() + ARRIVAL_GRACE
        self._notify()

    def _blocked(self) -> tuple[bool, float | None]:
        """Under _LOCK: whether this call must still wait, and until when at most."""
        now = time.monotonic()
        for other in self.earlier:
            if other in self.group.finished:
                continue
            if other in self.group.started:
                return True, None
            if now >= self.deadline:
                # It has not started in time: it was answered without the tool, or ran earlier.
                self.group.finished.add(other)
                continue
            return True, self.deadline
        return False, None

    def _notify(self) -> None:
        # Under _LOCK: wake synchronous and asynchronous waiters to re-check their turn.
        _CHANGED.notify_all()
        for loop, future in self.group.async_waiters:
            loop.call_soon_threadsafe(_resolve, future)
        self.group.async_waiters.clear()

    def wait(self) -> None:
        """Block until every earlier call of the group has finished."""
        with _LOCK:
            self._start()
            while True:
                blocked, until = self._blocked()
                if not blocked:
                    return
                _CHANGED.wait(None if until is None else max(0.0, until - time.monotonic()))

    async def await_turn(self) -> None:
        """Async :meth:`wait`, without holding a thread while waiting."""
        loop = asyncio.get_running_loop()
        with _LOCK:
            self._start()
        while True:
            with _LOCK:
                blocked, until = self._blocked()
                if not blocked:
                    return
                future: asyncio.Future[None] = loop.create_future()
                self.group.async_waiters.append((loop, future))
            timeout = None if until is None else max(0.0, until - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, timeout)

    def done(self) -> None:
        """Release the next call of the group."""
        with _LOCK:
            group = self.group
            group.finished.add(self.call_id)
            group.touched = time.monotonic()
            self._notify()
            if group.finished.issuperset(group.members) and _GROUPS.get(self.key) is group:
                del _GROUPS[self.key]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _messages(state: Any) -> Sequence[Any]:
    if isinstance(state, list):
        return state
    if isinstance(state, dict):
        return state.get("messages") or []
    return getattr(state, "messages", None) or []


def turn_for(
    tool: Any, runtime: Any, call_id: str | None, config: dict[str, Any] | None
) -> Turn | None:
    """The turn of one tool call, or ``None`` when it has no place in an ordered group.

    Args:
        tool: The E2B tool being called; other calls of the message share its sandbox when their
            tool has the same ``session`` provider.
        runtime: The ``ToolRuntime`` LangGraph injected (its ``state`` holds the messages and its
            ``tools`` the tools of the node), or ``None``.
        call_id: The tool call's id.
        config: The call's ``RunnableConfig``; its ``thread_id`` picks the sandbox of a thread.
    """
    if runtime is None or not call_id:
        return None
    messages = _messages(getattr(runtime, "state", None))
    position = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if any(c.get("id") == call_id for c in getattr(messages[i], "tool_calls", None) or [])
        ),
        None,
    )
    if position is None:
        return None
    message = messages[position]
    answered = {getattr(m, "tool_call_id", None) for m in messages[position + 1 :]}
    node_tools = getattr(runtime, "tools", None)
    by_name = {t.name: t for t in node_tools} if node_tools else {tool.name: tool}
    members = tuple(
        str(call["id"])
        for call in message.tool_calls
        if call.get("id")
        and (call["id"] == call_id or call["id"] not in answered)
        and getattr(by_name.get(call["name"]), "session", None) is tool.session
    )
    if len(members) < 2 or call_id not in members:
        return None
    thread = ((config or {}).get("configurable") or {}).get("thread_id")
    key = (id(tool.session), thread, getattr(message, "id", None), members)
    return Turn(key, members, call_id)


__all__ = ["ARRIVAL_GRACE", "Turn", "turn_for"]
