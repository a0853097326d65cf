"""Thread-scoped sandboxes through real graphs, the real SDK and the real runtime."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from e2b_code_interpreter import Sandbox
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_e2b import E2BSandboxToolkit, threads
from langchain_e2b.langgraph import STORE_NAMESPACE, E2BThreadSessions
from langchain_e2b.session import RESTART_NOTICE
from langchain_e2b.testing import tool_call, turn
from tests.agents.agent_helpers import ScriptedChatModel, echo_model, sandboxes_of, tool_texts

Factory = Callable[..., E2BThreadSessions]


def _agent(sessions: E2BThreadSessions, model: Any = None, **kwargs: Any) -> Any:
    tools = E2BSandboxToolkit(session=sessions, selected_tools=["run_code"]).get_tools()
    return create_agent(model or echo_model(), tools, **kwargs)


def _ask(agent: Any, thread: str, code: str) -> list[str]:
    result = agent.invoke({"messages": [("user", code)]}, {"configurable": {"thread_id": thread}})
    return tool_texts(result)


def test_two_threads_get_two_sandboxes_that_do_not_share_variables(
    make_sessions: Factory, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    agent = _agent(sessions)
    first, second = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"

    _ask(agent, first, "owner = 'first thread'")
    texts = _ask(agent, second, "print(owner)")

    assert "NameError" in texts[-1]
    session_a, session_b = sessions.session_for(first), sessions.session_for(second)
    assert session_a is not None
    assert session_b is not None
    assert session_a.sandbox_id != session_b.sandbox_id
    # Each sandbox carries its own thread tag, so the backend can tell them apart.
    assert sandboxes_of(e2b_connection, first) == [session_a.sandbox_id]
    assert sandboxes_of(e2b_connection, second) == [session_b.sandbox_id]


def test_same_thread_keeps_variables_across_two_invocations(
    make_sessions: Factory, thread_id: str
) -> None:
    agent = _agent(make_sessions(), checkpointer=InMemorySaver())

    _ask(agent, thread_id, "counter = 41")
    texts = _ask(agent, thread_id, "counter + 1")

    assert texts[-1].startswith("Out[")
    assert texts[-1].endswith(": 42")


def test_new_provider_with_the_same_store_reconnects_to_the_same_sandbox(
    make_sessions: Factory, thread_id: str
) -> None:
    store = InMemoryStore()
    first = make_sessions()
    _ask(_agent(first, store=store), thread_id, "answer = 6 * 7")
    original = first.session_for(thread_id)
    assert original is not None
    assert original.sandbox_id is not None
    record = store.get(STORE_NAMESPACE, thread_id)
    assert record is not None
    assert record.value["sandbox_id"] == original.sandbox_id

    # A second provider (think: a restarted process) finds the sandbox through the graph's store.
    second = make_sessions()
    texts = _ask(_agent(second, store=store), thread_id, "answer")

    reconnected = second.session_for(thread_id)
    assert reconnected is not None
    assert reconnected is not original
    assert reconnected.sandbox_id == original.sandbox_id
    assert texts[-1].endswith(": 42")
    assert RESTART_NOTICE not in texts[-1]


def test_reconnect_to_a_sandbox_that_is_gone_creates_one_and_tells_the_model(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    store = InMemoryStore()
    first = make_sessions()
    _ask(_agent(first, store=store), thread_id, "value = 1")
    dead = first.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    Sandbox.kill(dead, **e2b_connection)

    second = make_sessions()
    texts = _ask(_agent(second, store=store), thread_id, "print('still here')")

    assert texts[-1].startswith(RESTART_NOTICE)
    assert "still here" in texts[-1]
    replacement = second.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    assert replacement != dead
    assert store.get(STORE_NAMESPACE, thread_id).value["sandbox_id"] == replacement  # type: ignore[union-attr]
    assert sandboxes_of(e2b_connection, thread_id) == [replacement]


def _parallel_model(count: int) -> ScriptedChatModel:
    calls = [tool_call("run_code", code=f"import os; {n}; os.getpid()") for n in range(count)]
    return ScriptedChatModel(script=[turn(*calls), "done"])


def test_parallel_tool_calls_in_one_step_make_one_sandbox(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    agent = _agent(sessions, model=_parallel_model(4))

    result = agent.invoke(
        {"messages": [("user", "go")]}, {"configurable": {"thread_id": thread_id}}
    )

    tool_messages = [m for m in result["messages"] if m.type == "tool"]
    assert len(tool_messages) == 4
    assert {m.artifact["sandbox_id"] for m in tool_messages} == {
        sessions.session_for(thread_id).sandbox_id  # type: ignore[union-attr]
    }
    assert len(sandboxes_of(e2b_connection, thread_id)) == 1


async def test_parallel_async_tool_calls_in_one_step_make_one_sandbox(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    agent = _agent(sessions, model=_parallel_model(5), store=InMemoryStore())

    result = await agent.ainvoke(
        {"messages": [("user", "go")]}, {"configurable": {"thread_id": thread_id}}
    )

    sandbox_ids = {m.artifact["sandbox_id"] for m in result["messages"] if m.type == "tool"}
    assert len(sandbox_ids) == 1
    assert sandboxes_of(e2b_connection, thread_id) == list(sandbox_ids)


def test_idle_timeout_becomes_the_sandbox_timeout(make_sessions: Factory, thread_id: str) -> None:
    sessions = make_sessions(idle_timeout=123)

    session = sessions.get({"configurable": {"thread_id": thread_id}})

    assert session.sandbox_timeout == 123
    assert session.metadata["thread_id"] == thread_id
    assert sessions.get({"configurable": {"thread_id": thread_id}}) is session


def test_idle_sessions_are_dropped_from_memory_but_their_sandbox_is_left_to_its_timeout(
    make_sessions: Factory,
    thread_id: str,
    e2b_connection: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions = make_sessions(idle_timeout=600)
    idle = sessions.get({"configurable": {"thread_id": thread_id}})
    idle.run_code("kept = True")
    # The provider's clock moves on past idle_timeout (the sandbox's own timeout does not).
    now = time.monotonic()
    monkeypatch.setattr(threads, "time", SimpleNamespace(monotonic=lambda: now + 601))

    sessions.get({"configurable": {"thread_id": f"{thread_id}-other"}})
    monkeypatch.undo()

    assert sessions.session_for(thread_id) is None
    assert idle.closed
    assert sandboxes_of(e2b_connection, thread_id) == [idle.sandbox_id]
    # Back from idle: the thread reconnects to its sandbox (still within its E2B timeout).
    back = sessions.get({"configurable": {"thread_id": thread_id}})
    assert back.run_code("kept").text == "True"
    assert back.sandbox_id == idle.sandbox_id


def test_calls_without_a_thread_share_one_untagged_session(make_sessions: Factory) -> None:
    sessions = make_sessions()

    first = sessions.get({})
    second = sessions.get(None)

    assert first is second
    assert "thread_id" not in first.metadata


def test_recording_embedded_runtime_sandboxes_in_a_store_warns(
    make_sessions: Factory,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A provider on this test's backend (a runtime it reaches by URL): no warning.
    with caplog.at_level(logging.WARNING, logger="langchain_e2b.threads"):
        _ask(_agent(make_sessions(), store=InMemoryStore()), thread_id, "1")
    assert "embedded in this process" not in caplog.text

    # The default backend without E2B settings: the local runtime embedded in this process.
    for variable in ("E2B_API_KEY", "E2B_API_URL", "E2B_SANDBOX_URL", "E2B_DOMAIN"):
        monkeypatch.delenv(variable, raising=False)
    with E2BThreadSessions() as embedded, caplog.at_level(logging.WARNING):
        agent = _agent(embedded, store=InMemoryStore())
        _ask(agent, thread_id, "1")
        _ask(agent, f"{thread_id}-2", "1")
    warnings = [r for r in caplog.records if "embedded in this process" in r.getMessage()]
    assert len(warnings) == 1
    assert "langchain-e2b local serve" in warnings[0].getMessage()
