"""Every tool works through ``create_agent`` and LangGraph's ``create_react_agent``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from langchain_e2b import E2BSandboxSession, E2BSandboxToolkit

# One model turn per tool, then a final answer: every tool is called once, in this order.
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("write_file", {"path": "hello.py", "content": "print('hi from file')\n"}),
    ("edit_file", {"path": "hello.py", "old_text": "hi from", "new_text": "hello from"}),
    ("read_file", {"path": "hello.py"}),
    ("list_files", {"path": "."}),
    ("run_command", {"command": "python3 hello.py"}),
    ("install_packages", {"packages": ["pip"]}),
    ("run_code", {"code": "answer = 6 * 7\nanswer"}),
]


class ScriptedModel(GenericFakeChatModel):
    """Replays fixed AI messages; tools are accepted and ignored."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:
        return self


def scripted() -> ScriptedModel:
    turns: list[BaseMessage] = [
        AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{i}"}])
        for i, (name, args) in enumerate(STEPS)
    ]
    turns.append(AIMessage("done"))
    return ScriptedModel(messages=iter(turns))


@pytest.fixture
def toolkit(make_session: Callable[..., E2BSandboxSession]) -> Iterator[E2BSandboxToolkit]:
    with E2BSandboxToolkit(session=make_session()) as kit:
        yield kit


def check(messages: list[BaseMessage]) -> None:
    results = {m.name: m for m in messages if isinstance(m, ToolMessage)}
    assert list(results) == [name for name, _ in STEPS]
    assert all(m.status == "success" for m in results.values()), [
        (m.name, m.content) for m in results.values() if m.status != "success"
    ]
    assert results["run_command"].content == "hello from file\nExit code: 0"
    assert results["run_code"].content == "Out[1]: 42"
    assert results["read_file"].content == "print('hello from file')\n"
    assert messages[-1].content == "done"


def test_create_agent(toolkit: E2BSandboxToolkit) -> None:
    from langchain.agents import create_agent

    agent = create_agent(scripted(), toolkit.get_tools())
    check(agent.invoke({"messages": [("user", "go")]})["messages"])


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
async def test_create_react_agent_async(toolkit: E2BSandboxToolkit) -> None:
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(scripted(), toolkit.get_tools())
    custom: list[Any] = []
    final: dict[str, Any] = {}
    async for mode, chunk in agent.astream(
        {"messages": [("user", "go")]}, stream_mode=["custom", "values"]
    ):
        if mode == "custom":
            custom.append(chunk)
        else:
            final = chunk
    check(final["messages"])
    outputs = [c for c in custom if c.get("type") == "e2b_output"]
    # Chunks arrive as the process writes them; together they are the command's stdout.
    stdout = "".join(c["text"] for c in outputs if c["stream"] == "stdout")
    assert stdout.startswith("hello from file\n")
