"""``idle_policy="pause"``: an idle thread's sandbox is paused, and the next call resumes it.

Real graphs, the real SDK and the real runtime: the backend pauses the sandbox at its timeout
(``lifecycle={"on_timeout": "pause"}``), and the thread finds the same sandbox with its state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from e2b import SandboxState
from e2b_code_interpreter import Sandbox
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_e2b import E2BSandboxToolkit
from langchain_e2b.errors import E2BConfigError
from langchain_e2b.langgraph import E2BThreadSessions
from langchain_e2b.middleware import E2BSandboxMiddleware
from langchain_e2b.session import RESTART_NOTICE, E2BSandboxSession
from tests.agents.agent_helpers import echo_model, sandboxes_of, tool_texts

Factory = Callable[..., E2BThreadSessions]
IDLE = 2  # seconds: the sandbox's timeout, after which the backend pauses (or kills) it


def _agent(sessions: E2BThreadSessions, **kwargs: Any) -> Any:
    tools = E2BSandboxToolkit(session=sessions, selected_tools=["run_code"]).get_tools()
    return create_agent(echo_model(), tools, checkpointer=InMemorySaver(), **kwargs)


def _ask(agent: Any, thread: str, code: str) -> list[str]:
    result = agent.invoke({"messages": [("user", code)]}, {"configurable": {"thread_id": thread}})
    return tool_texts(result)


def _wait_paused(sandbox_id: str, connection: dict[str, Any]) -> SandboxState:
    """Poll the backend (up to 30 s) until the sandbox is paused; return its last state."""
    deadline = time.monotonic() + 30
    state: SandboxState = Sandbox.get_info(sandbox_id, **connection).state
    while state != SandboxState.PAUSED and time.monotonic() < deadline:
        time.sleep(0.2)
        state = Sandbox.get_info(sandbox_id, **connection).state
    return state


def test_idle_thread_is_paused_and_its_next_call_resumes_the_same_sandbox(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions(idle_policy="pause", idle_timeout=IDLE)
    agent = _agent(sessions)
    _ask(agent, thread_id, "kept = 'paused, not lost'")
    sandbox_id = sessions.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    assert sandbox_id is not None

    assert _wait_paused(sandbox_id, e2b_connection) == SandboxState.PAUSED
    texts = _ask(agent, thread_id, "print(kept)")

    assert "paused, not lost" in texts[-1]
    assert RESTART_NOTICE not in texts[-1]
    assert sessions.session_for(thread_id).sandbox_id == sandbox_id  # type: ignore[union-attr]
    assert sandboxes_of(e2b_connection, thread_id) == [sandbox_id]


async def test_async_calls_resume_a_paused_thread_sandbox(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions(idle_policy="pause", idle_timeout=IDLE)
    agent = _agent(sessions)
    config = {"configurable": {"thread_id": thread_id}}
    await agent.ainvoke({"messages": [("user", "kept = 'async too'")]}, config)
    sandbox_id = sessions.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    assert sandbox_id is not None

    assert _wait_paused(sandbox_id, e2b_connection) == SandboxState.PAUSED
    result = await agent.ainvoke({"messages": [("user", "print(kept)")]}, config)

    texts = tool_texts(result)
    assert "async too" in texts[-1]
    assert RESTART_NOTICE not in texts[-1]
    assert sessions.session_for(thread_id).sandbox_id == sandbox_id  # type: ignore[union-attr]


def test_another_provider_with_the_same_store_resumes_the_paused_sandbox(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    store = InMemoryStore()
    first = make_sessions(idle_policy="pause", idle_timeout=IDLE)
    _ask(_agent(first, store=store), thread_id, "answer = 6 * 7")
    sandbox_id = first.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    assert sandbox_id is not None
    assert _wait_paused(sandbox_id, e2b_connection) == SandboxState.PAUSED

    # A second provider (think: a restarted process) finds the paused sandbox in the store.
    second = make_sessions(idle_policy="pause", idle_timeout=IDLE)
    texts = _ask(_agent(second, store=store), thread_id, "answer")

    assert texts[-1].endswith(": 42")
    assert RESTART_NOTICE not in texts[-1]
    assert second.session_for(thread_id).sandbox_id == sandbox_id  # type: ignore[union-attr]


def test_kill_policy_still_kills_an_idle_sandbox_and_says_so(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions(idle_timeout=IDLE)
    assert sessions.idle_policy == "kill"
    agent = _agent(sessions)
    _ask(agent, thread_id, "kept = 1")
    dead = sessions.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while dead in sandboxes_of(e2b_connection, thread_id):
        assert time.monotonic() < deadline, "the idle sandbox was not killed"
        time.sleep(0.2)

    texts = _ask(agent, thread_id, "print('new sandbox')")

    assert texts[-1].startswith(RESTART_NOTICE)
    assert sessions.session_for(thread_id).sandbox_id != dead  # type: ignore[union-attr]


def test_bad_idle_policy_and_on_timeout_are_refused_with_what_to_pass(
    e2b_connection: dict[str, Any],
) -> None:
    with pytest.raises(E2BConfigError, match="idle_policy must be 'kill' or 'pause'"):
        E2BThreadSessions(idle_policy="sleep", **e2b_connection)  # type: ignore[arg-type]
    with pytest.raises(E2BConfigError, match="pass idle_policy="):
        E2BThreadSessions(on_timeout="pause", **e2b_connection)


def test_middleware_passes_idle_policy_to_its_sessions(e2b_connection: dict[str, Any]) -> None:
    middleware = E2BSandboxMiddleware(idle_policy="pause", idle_timeout=IDLE, **e2b_connection)
    try:
        assert middleware.sessions.idle_policy == "pause"
        session = middleware.sessions.get({"configurable": {"thread_id": "middleware-pause"}})
        assert session.on_timeout == "pause"
    finally:
        middleware.sessions.close()


def test_an_sdk_that_cannot_pause_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class OldSandbox:
        """An SDK release whose create has no lifecycle parameter."""

        default_template = "code-interpreter-v1"

        @classmethod
        def create(cls, template: str | None = None, timeout: int | None = None) -> None:
            """Create a sandbox."""

    monkeypatch.setattr("langchain_e2b.session.Sandbox", OldSandbox)
    with pytest.raises(E2BConfigError, match="upgrade e2b"):
        E2BSandboxSession(on_timeout="pause")
    assert E2BSandboxSession().on_timeout == "kill"  # the default needs nothing new
