"""``E2BSandboxMiddleware`` in a real ``create_agent`` run against the real runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import BaseMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_e2b.errors import E2BConfigError
from langchain_e2b.langgraph import E2BSandboxMiddleware, E2BThreadSessions
from langchain_e2b.session import RESTART_NOTICE
from langchain_e2b.testing import tool_call, turn
from tests.agents.agent_helpers import ScriptedChatModel, echo_model, sandboxes_of, tool_texts

Factory = Callable[..., E2BThreadSessions]


class ProviderDown(RuntimeError):
    pass


def _fail(messages: list[BaseMessage]) -> str:
    raise ProviderDown("the model provider is unavailable")


def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_adds_the_tools_and_a_system_prompt_section(make_sessions: Factory, thread_id: str) -> None:
    seen: list[list[BaseMessage]] = []

    def record(messages: list[BaseMessage]) -> str:
        seen.append(messages)
        return "ok"

    middleware = E2BSandboxMiddleware(make_sessions())
    agent = create_agent(
        ScriptedChatModel(script=[record]), system_prompt="Be brief.", middleware=[middleware]
    )
    agent.invoke({"messages": [("user", "hi")]}, _config(thread_id))

    assert [t.name for t in middleware.tools] == [
        "run_code",
        "run_command",
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
        "install_packages",
        "job_status",
        "job_output",
        "job_stop",
    ]
    system = seen[0][0]
    assert isinstance(system, SystemMessage)
    assert system.text.startswith("Be brief.")
    assert "## Code sandbox" in system.text
    assert "/home/user" in system.text


def test_kills_the_thread_sandbox_when_a_run_fails(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    model = ScriptedChatModel(script=[turn(tool_call("run_code", code="x = 1")), _fail])
    agent = create_agent(model, middleware=[E2BSandboxMiddleware(sessions)])

    with pytest.raises(ProviderDown):
        agent.invoke({"messages": [("user", "go")]}, _config(thread_id))

    assert sessions.session_for(thread_id) is None
    assert sandboxes_of(e2b_connection, thread_id) == []


async def test_kills_the_thread_sandbox_when_an_async_run_fails(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    model = ScriptedChatModel(script=[turn(tool_call("run_code", code="x = 1")), _fail])
    agent = create_agent(model, middleware=[E2BSandboxMiddleware(sessions)])

    with pytest.raises(ProviderDown):
        await agent.ainvoke({"messages": [("user", "go")]}, _config(thread_id))

    assert sessions.session_for(thread_id) is None
    assert sandboxes_of(e2b_connection, thread_id) == []


def test_keep_on_failure_leaves_the_sandbox_running(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    model = ScriptedChatModel(script=[turn(tool_call("run_code", code="x = 1")), _fail])
    agent = create_agent(model, middleware=[E2BSandboxMiddleware(sessions, on_failure="keep")])

    with pytest.raises(ProviderDown):
        agent.invoke({"messages": [("user", "go")]}, _config(thread_id))

    session = sessions.session_for(thread_id)
    assert session is not None
    assert sandboxes_of(e2b_connection, thread_id) == [session.sandbox_id]


def test_cleanup_run_kills_the_sandbox_at_the_end_and_the_next_run_is_told(
    make_sessions: Factory, thread_id: str, e2b_connection: dict[str, Any]
) -> None:
    sessions = make_sessions()
    agent = create_agent(
        echo_model(),
        middleware=[E2BSandboxMiddleware(sessions, cleanup="run")],
        checkpointer=InMemorySaver(),
    )

    agent.invoke({"messages": [("user", "kept = 'no'")]}, _config(thread_id))
    assert sessions.session_for(thread_id) is None
    assert sandboxes_of(e2b_connection, thread_id) == []

    result = agent.invoke({"messages": [("user", "print('again')")]}, _config(thread_id))
    assert tool_texts(result)[-1].startswith(RESTART_NOTICE)


def test_session_options_go_to_one_place_only(make_sessions: Factory) -> None:
    with pytest.raises(E2BConfigError):
        E2BSandboxMiddleware(make_sessions(), idle_timeout=5)
