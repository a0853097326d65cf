"""Parallel tool calls that share a sandbox run in the order the model wrote them.

One model message makes four dependent ``run_code`` calls (``a = 1``, ``b = a + 1``,
``c = b + 1``, ``print(c)``). LangGraph runs them at the same time (a thread pool when sync,
``asyncio.gather`` when async), so without ordering a later cell can reach the kernel first and
fail with a ``NameError``. Each agent is run 50 times in a row on one sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langchain_e2b import E2BSandboxSession, E2BSandboxToolkit
from langchain_e2b.langgraph import E2BSandboxMiddleware, E2BThreadSessions
from langchain_e2b.testing import ScriptedChatModel, tool_call, turn
from tests.agents.agent_helpers import tool_texts

RUNS = 50

pytestmark = pytest.mark.slow


def _cells(tag: str) -> list[str]:
    # Fresh names per run: the kernel keeps variables, so reused names would hide a reordering.
    return [
        f"order_{tag} = [0]\na_{tag} = 1",
        f"order_{tag}.append(1)\nb_{tag} = a_{tag} + 1",
        f"order_{tag}.append(2)\nc_{tag} = b_{tag} + 1",
        f"order_{tag}.append(3)\nprint(c_{tag}, order_{tag})",
    ]


def _four_calls(messages: list[BaseMessage]) -> AIMessage:
    tag = str(sum(isinstance(m, AIMessage) for m in messages))
    return turn(*(tool_call("run_code", code=cell) for cell in _cells(tag)))


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(script=[_four_calls, "done"] * RUNS)


def _check(texts: list[str], run: int) -> None:
    last = texts[-4:]
    assert len(last) == 4, f"run {run}: {texts}"
    assert "3 [0, 1, 2, 3]" in last[3], f"run {run} ran out of order: {last}"
    assert not any("Error" in text for text in last), f"run {run}: {last}"


@pytest.fixture(scope="module")
def shared_session(e2b_connection: dict[str, Any]) -> Any:
    session = E2BSandboxSession(**e2b_connection, metadata={"test_module": "call_order"})
    try:
        yield session
    finally:
        session.close()


def _agent_with_toolkit(session: E2BSandboxSession) -> Any:
    tools = E2BSandboxToolkit(session=session, selected_tools=["run_code"]).get_tools()
    return create_agent(_model(), tools, checkpointer=InMemorySaver())


def test_create_agent_sync_runs_parallel_calls_in_order(shared_session: E2BSandboxSession) -> None:
    agent = _agent_with_toolkit(shared_session)
    config = {"configurable": {"thread_id": "order-sync"}}
    for run in range(RUNS):
        result = agent.invoke({"messages": [HumanMessage("go")]}, config)
        _check(tool_texts(result), run)


async def test_create_agent_async_runs_parallel_calls_in_order(
    shared_session: E2BSandboxSession,
) -> None:
    agent = _agent_with_toolkit(shared_session)
    config = {"configurable": {"thread_id": "order-async"}}
    for run in range(RUNS):
        result = await agent.ainvoke({"messages": [HumanMessage("go")]}, config)
        _check(tool_texts(result), run)


def _tool_node_input(run: str) -> dict[str, Any]:
    message = AIMessage(
        content="",
        tool_calls=[
            {"name": "run_code", "args": {"code": cell}, "id": f"call-{run}-{i}"}
            for i, cell in enumerate(_cells(run))
        ],
    )
    return {"messages": [HumanMessage("go"), message]}


def _tool_node_graph(session: E2BSandboxSession) -> Any:
    """A graph whose only node is a ``ToolNode`` with every sandbox tool."""
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(E2BSandboxToolkit(session=session).get_tools()))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    return graph.compile()


def test_tool_node_sync_runs_parallel_calls_in_order(shared_session: E2BSandboxSession) -> None:
    node = _tool_node_graph(shared_session)
    for run in range(RUNS):
        result = node.invoke(_tool_node_input(f"node_sync_{run}"))
        _check(tool_texts(result), run)


async def test_tool_node_async_runs_parallel_calls_in_order(
    shared_session: E2BSandboxSession,
) -> None:
    node = _tool_node_graph(shared_session)
    for run in range(RUNS):
        result = await node.ainvoke(_tool_node_input(f"node_async_{run}"))
        _check(tool_texts(result), run)


def test_middleware_thread_sandbox_runs_parallel_calls_in_order(
    make_sessions: Callable[..., E2BThreadSessions], thread_id: str
) -> None:
    middleware = E2BSandboxMiddleware(make_sessions(), selected_tools=["run_code"])
    agent = create_agent(_model(), middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": thread_id}}
    for run in range(RUNS):
        result = agent.invoke({"messages": [HumanMessage("go")]}, config)
        _check(tool_texts(result), run)


async def test_middleware_thread_sandbox_runs_parallel_calls_in_order_async(
    make_sessions: Callable[..., E2BThreadSessions], thread_id: str
) -> None:
    middleware = E2BSandboxMiddleware(make_sessions(), selected_tools=["run_code"])
    agent = create_agent(_model(), middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": thread_id}}
    for run in range(RUNS):
        result = await agent.ainvoke({"messages": [HumanMessage("go")]}, config)
        _check(tool_texts(result), run)


class _AnswersFirstCall(AgentMiddleware):
    """Answers the message's first tool call itself, so that call never reaches the tool."""

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        if request.tool_call["id"].endswith("_0"):
            return ToolMessage("skipped by policy", tool_call_id=request.tool_call["id"])
        return handler(request)


def test_a_call_answered_without_the_tool_does_not_block_the_others(
    shared_session: E2BSandboxSession,
) -> None:
    cells = ["x_skip = 'never'", "y_skip = 1", "y_skip += 1", "print(y_skip)"]
    model = ScriptedChatModel(
        script=[turn(*(tool_call("run_code", code=c) for c in cells)), "done"]
    )
    tools = E2BSandboxToolkit(session=shared_session, selected_tools=["run_code"]).get_tools()
    agent = create_agent(model, tools, middleware=[_AnswersFirstCall()])
    texts = tool_texts(agent.invoke({"messages": [HumanMessage("go")]}))
    assert texts == [
        "skipped by policy",
        "Code ran with no output.",
        "Code ran with no output.",
        "2",
    ], texts


def test_a_call_with_invalid_arguments_does_not_block_the_others(
    shared_session: E2BSandboxSession,
) -> None:
    calls = [
        tool_call("run_code", code="z_bad = 1", timeout=-5),  # refused by the schema
        tool_call("run_code", code="w_ok = 1"),
        tool_call("run_code", code="w_ok += 1"),
        tool_call("run_code", code="print(w_ok)"),
    ]
    model = ScriptedChatModel(script=[turn(*calls), "done"])
    tools = E2BSandboxToolkit(session=shared_session, selected_tools=["run_code"]).get_tools()
    texts = tool_texts(create_agent(model, tools).invoke({"messages": [HumanMessage("go")]}))
    assert "timeout" in texts[0]
    assert texts[1:] == ["Code ran with no output.", "Code ran with no output.", "2"], texts
