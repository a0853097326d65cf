"""The bundled scripted chat model (no sandbox needed)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_e2b.testing import END_OF_SCRIPT, ScriptedChatModel, tool_call, turn


@tool
def run_code(code: str) -> str:
    """Run code."""
    return code


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[
            turn(tool_call("run_code", code="1"), tool_call("run_code", code="2"), text="Both."),
            lambda messages: f"saw {len(messages)} messages",
        ]
    )


def test_replies_follow_the_number_of_ai_messages_in_the_conversation() -> None:
    model = _model().bind_tools([run_code])
    first = model.invoke([HumanMessage("go")])
    assert first.text == "Both."
    assert [c["args"] for c in first.tool_calls] == [{"code": "1"}, {"code": "2"}]
    assert [c["id"] for c in first.tool_calls] == ["call_0_0", "call_0_1"]

    history = [
        HumanMessage("go"),
        first,
        ToolMessage("1", tool_call_id="call_0_0"),
        ToolMessage("2", tool_call_id="call_0_1"),
    ]
    assert model.invoke(history).text == "saw 4 messages"
    assert model.invoke([*history, AIMessage("x")]).text == END_OF_SCRIPT
    # The same conversation gets the same reply again: no hidden cursor.
    assert model.invoke([HumanMessage("go")]).tool_calls == first.tool_calls


def test_a_bound_model_refuses_tools_that_were_not_bound() -> None:
    @tool
    def other(x: int) -> int:
        """Other tool."""
        return x

    with pytest.raises(ValueError, match="not bound"):
        _model().bind_tools([other]).invoke([HumanMessage("go")])


def test_streaming_yields_the_same_message() -> None:
    model = _model().bind_tools([run_code])
    chunks = list(model.stream([HumanMessage("go")]))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert len(chunks) > 1
    assert merged.text == "Both."
    assert [(c["name"], c["args"], c["id"]) for c in merged.tool_calls] == [
        ("run_code", {"code": "1"}, "call_0_0"),
        ("run_code", {"code": "2"}, "call_0_1"),
    ]


def test_old_import_paths_still_work() -> None:
    import langchain_e2b.demo as demo
    import langchain_e2b.langgraph as langgraph
    import langchain_e2b.middleware as middleware
    import langchain_e2b.testing as testing
    import langchain_e2b.threads as threads

    assert demo.ScriptedChatModel is testing.ScriptedChatModel
    assert demo.tool_call is testing.tool_call
    assert langgraph.E2BThreadSessions is threads.E2BThreadSessions
    assert langgraph.E2BSandboxMiddleware is middleware.E2BSandboxMiddleware
    for module in (langgraph, testing, threads, middleware):
        for name in module.__all__:
            assert getattr(module, name) is not None
