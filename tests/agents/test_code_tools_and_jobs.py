"""A scripted ``create_agent`` run that calls its tools from code and watches a background job."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import tool

from langchain_e2b.langgraph import E2BSandboxMiddleware, E2BThreadSessions
from langchain_e2b.testing import ScriptedChatModel, tool_call, turn

Factory = Callable[..., E2BThreadSessions]

STOCK = {f"sku-{n}": n * 3 for n in range(25)}


@tool
def stock(sku: str) -> str:
    """Units in stock for one SKU."""
    return json.dumps({"sku": sku, "units": STOCK[sku]})


@tool
def messages_so_far(runtime: ToolRuntime) -> int:
    """How many messages the conversation holds (reads the agent's state)."""
    return len(runtime.state["messages"])


class ToolRuns(BaseCallbackHandler):
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
        self.names.append(str(serialized.get("name")))


CELL = """
total = sum(agent_tools.stock(sku=f"sku-{n}")["units"] for n in range(25))
print("total units", total, "messages", agent_tools.messages_so_far())
"""

WORKER = "for i in 1 2 3; do echo step $i; sleep 0.2; done; echo finished; exit 0"


def _job_id(messages: list[BaseMessage]) -> str:
    last = messages[-1]
    assert isinstance(last, ToolMessage)
    return str(last.artifact["job_id"])


def test_agent_uses_code_tools_and_a_background_job(make_sessions: Factory, thread_id: str) -> None:
    script = [
        turn(tool_call("run_code", code=CELL)),
        turn(tool_call("run_command", command=WORKER, background=True)),
        lambda messages: turn(tool_call("job_output", job_id=_job_id(messages), wait=30)),
        lambda messages: turn(tool_call("job_status", job_id="job-1")),
        "All 25 SKUs counted, and the worker finished.",
    ]
    middleware = E2BSandboxMiddleware(make_sessions(), code_tools=[stock, messages_so_far])
    agent = create_agent(ScriptedChatModel(script=script), middleware=[middleware])
    runs = ToolRuns()
    result = agent.invoke(
        {"messages": [("user", "Count the stock, then run the worker.")]},
        {"configurable": {"thread_id": thread_id}, "callbacks": [runs]},
    )
    texts = [m.text for m in result["messages"] if m.type == "tool"]
    # user, AI, and nothing else yet when the cell ran
    assert texts[0].strip() == f"total units {sum(STOCK.values())} messages 2", texts[0]
    assert runs.names.count("stock") == 25
    assert runs.names.count("messages_so_far") == 1
    assert texts[1].startswith("Started job-1 in the background")
    assert "exited with code 0" in texts[2], texts[2]
    assert "step 1\nstep 2\nstep 3\nfinished" in texts[2]
    assert "job-1" in texts[3]
    assert "exited with code 0" in texts[3]
    assert result["messages"][-1].text == "All 25 SKUs counted, and the worker finished."
    system_prompt_tools = [t.name for t in middleware.tools]
    assert "job_output" in system_prompt_tools
