"""A deep agent on our backend, driven by the scripted model: files, execute, run_code, charts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepagents import create_deep_agent
from langchain_core.messages import ToolMessage

from langchain_e2b.deepagents import E2BCodeMiddleware, E2BSandbox
from langchain_e2b.testing import ScriptedChatModel, tool_call, turn
from langchain_e2b.tools import OUTPUT_EVENT

APP = "/home/user/app.py"
CHART = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nplt.show()"
SCRIPT = [
    turn(tool_call("write_file", file_path=APP, content="print('version', 1)\n")),
    turn(tool_call("edit_file", file_path=APP, old_string="1)", new_string="2)")),
    turn(tool_call("execute", command=f"python {APP}")),
    turn(tool_call("run_code", code="total = 40")),
    turn(tool_call("run_code", code="total + 2")),
    turn(tool_call("run_code", code=CHART)),
    "All done.",
]


def _tool_messages(messages: list[Any]) -> dict[str, list[ToolMessage]]:
    by_name: dict[str, list[ToolMessage]] = {}
    for message in messages:
        if isinstance(message, ToolMessage):
            by_name.setdefault(message.name or "", []).append(message)
    return by_name


def test_deep_agent_edits_runs_and_keeps_state(
    make_backend: Callable[..., E2BSandbox], thread_id: str
) -> None:
    backend = make_backend()
    agent = create_deep_agent(
        model=ScriptedChatModel(script=SCRIPT),
        backend=backend,
        middleware=[E2BCodeMiddleware(backend)],
    )
    config = {"configurable": {"thread_id": thread_id}}
    events: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    for mode, chunk in agent.stream(
        {"messages": [("user", "Write, fix and run app.py, then do some maths.")]},
        config,
        stream_mode=["custom", "values"],
    ):
        if mode == "custom" and isinstance(chunk, dict) and chunk.get("type") == OUTPUT_EVENT:
            events.append(chunk)
        elif mode == "values":
            final = chunk
    tools = _tool_messages(final["messages"])

    assert tools["write_file"][0].status == "success"
    assert "1 instance" in tools["edit_file"][0].text
    execute = tools["execute"][0]
    assert "version 2" in execute.text
    assert "[Command succeeded with exit code 0]" in execute.text

    # The kernel kept `total` from one run_code call to the next.
    _first, second, chart = tools["run_code"]
    assert "42" in second.text
    # The chart reached the model as an image block.
    assert isinstance(chart.content, list)
    assert any(block.get("type") == "image" for block in chart.content if isinstance(block, dict))

    # execute streamed its output live, from the thread's own sandbox, shared with run_code.
    session = backend.sessions.session_for(thread_id)  # type: ignore[union-attr]
    assert session is not None
    streamed = "".join(event["text"] for event in events)
    assert "version 2" in streamed
    # Only execute streams: the helper commands of write_file and edit_file do not.
    assert "count" not in streamed
    assert {event["sandbox_id"] for event in events} == {session.sandbox_id}
    assert session.read_file(APP) == b"print('version', 2)\n"


async def test_deep_agent_async_threads_get_their_own_sandboxes(
    make_backend: Callable[..., E2BSandbox],
) -> None:
    backend = make_backend()
    script = [turn(tool_call("execute", command="hostname; echo $RANDOM > /tmp/mine")), "ok"]
    agent = create_deep_agent(model=ScriptedChatModel(script=script), backend=backend)
    ids = []
    for thread in ("thread-a", "thread-b"):
        await agent.ainvoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": thread}})
        session = backend.sessions.session_for(thread)  # type: ignore[union-attr]
        assert session is not None
        ids.append(session.sandbox_id)
    assert ids[0] != ids[1]
