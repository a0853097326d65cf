"""The agent's tools called from sandbox code (``code_tools``), on the real SDK and runtime."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain.tools import ToolRuntime
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool

from langchain_e2b import E2BCodeInterpreterTool, E2BSandboxSession
from langchain_e2b.code_tools import CodeTools
from langchain_e2b.tools import RunCodeInput

MakeSession = Callable[..., E2BSandboxSession]

pytestmark = pytest.mark.timeout(180)


@tool
def lookup(item: str) -> str:
    """Look up the price of an item."""
    return json.dumps({"item": item, "price": len(item)})


@tool
def fail(reason: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"cannot do it: {reason}")


class Runs(BaseCallbackHandler):
    """Tool runs seen by the callbacks: name, run id, parent run id; and ends."""

    def __init__(self) -> None:
        self.starts: list[tuple[Any, Any, Any]] = []
        self.ends = 0
        self.lock = threading.Lock()

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
        with self.lock:
            self.starts.append((serialized.get("name"), kw["run_id"], kw.get("parent_run_id")))

    def on_tool_end(self, output: Any, **kw: Any) -> None:
        with self.lock:
            self.ends += 1


class Events(AsyncCallbackHandler):
    """Every ``e2b_output`` event's text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def on_custom_event(self, name: str, data: Any, **kw: Any) -> None:
        if name == "e2b_output":
            self.texts.append(data["text"])


def invoke(runtool: E2BCodeInterpreterTool, code: str, config: Any = None) -> ToolMessage:
    call = {"type": "tool_call", "id": "c1", "name": "run_code", "args": {"code": code}}
    message = runtool.invoke(call, config=config)
    assert isinstance(message, ToolMessage)
    return message


async def ainvoke(runtool: E2BCodeInterpreterTool, code: str, config: Any = None) -> ToolMessage:
    call = {"type": "tool_call", "id": "c1", "name": "run_code", "args": {"code": code}}
    message = await runtool.ainvoke(call, config=config)
    assert isinstance(message, ToolMessage)
    return message


LOOP = """
total = 0
for i in range(50):
    total += agent_tools.lookup(item="x" * i)["price"]
print("total", total)
"""


def test_a_cell_loops_over_a_tool_and_returns_a_summary(make_session: MakeSession) -> None:
    session = make_session()
    runtool = E2BCodeInterpreterTool(session=session, code_tools=[lookup])
    runs = Runs()
    message = invoke(runtool, LOOP, config={"callbacks": [runs]})
    text = str(message.content)
    assert text.strip() == f"total {sum(range(50))}", text
    # 50 lookups, each a child run of the one run_code run.
    (code_run,) = [r for r in runs.starts if r[0] == "run_code"]
    lookups = [r for r in runs.starts if r[0] == "lookup"]
    assert len(lookups) == 50
    assert all(parent == code_run[1] for _, _, parent in lookups)
    assert runs.ends == 51
    # The plumbing is in neither the record nor the history.
    assert "agent_tools" not in message.artifact["stdout"]
    assert "agent_tools" not in session.history[-1].stdout
    # The model's cell numbering is its own: the setup cell does not count.
    assert session.history[-1].execution_count == 1


def test_unknown_tool_and_tool_error_raise_in_the_cell(make_session: MakeSession) -> None:
    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[lookup, fail])
    text = str(invoke(runtool, "agent_tools.nope(item='a')").content)
    assert "AttributeError: agent_tools has no tool named 'nope'" in text, text
    assert "fail, lookup" in text
    text = str(invoke(runtool, "agent_tools.fail(reason='too late')").content)
    assert "ToolError: fail failed: ValueError: cannot do it: too late" in text, text
    text = str(
        invoke(
            runtool,
            "try:\n    agent_tools.fail(reason='r')\nexcept agent_tools.ToolError as e:\n"
            "    print('caught', e)",
        ).content
    )
    assert text.strip() == "caught fail failed: ValueError: cannot do it: r", text
    text = str(invoke(runtool, "agent_tools.lookup(name='a')").content)
    assert "unexpected argument(s) name" in text, text
    # A request naming a tool that is not listed is refused by the host too, not only the stub.
    forged = (
        "import agent_tools as m\n"
        "m._SPECS['evil'] = dict(m._SPECS['lookup'], tool='evil')\n"
        "m._define('evil', m._SPECS['evil'])\n"
        "m.evil(item='a')"
    )
    text = str(invoke(runtool, forged).content)
    assert "ToolError: There is no tool named 'evil'" in text, text


def test_help_lists_the_tools_and_run_code_says_they_exist(make_session: MakeSession) -> None:
    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[lookup, fail])
    assert "agent_tools" in runtool.description
    assert "lookup(item)" in runtool.description
    text = str(invoke(runtool, "help(agent_tools)").content)
    for line in ("lookup(item)", "Look up the price of an item.", "fail(reason)", "A tool that"):
        assert line in text, text


def test_a_request_line_without_the_secret_is_plain_output(make_session: MakeSession) -> None:
    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[lookup])
    runs = Runs()
    fake = '"\\x1fagent_tools " + "0" * 32 + " " + \'{"id": "1", "tool": "lookup", "args": {}}\''
    message = invoke(runtool, f"print({fake})\nprint('after')", config={"callbacks": [runs]})
    assert [r[0] for r in runs.starts] == ["run_code"]
    assert "after" in str(message.content)


async def test_parallel_calls_from_async_code(make_session: MakeSession) -> None:
    @tool
    async def slow_echo(text: str) -> str:
        """Echo after a pause."""
        await asyncio.sleep(0.5)
        return text

    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[slow_echo])
    runs = Runs()
    events = Events()
    code = (
        "import asyncio, time\n"
        "t = time.monotonic()\n"
        "got = await asyncio.gather(*[agent_tools.aio.slow_echo(text=f'n{i}') for i in range(8)])\n"
        "print(got, time.monotonic() - t < 4)"
    )
    message = await ainvoke(runtool, code, config={"callbacks": [runs, events]})
    text = str(message.content)
    assert text.strip() == f"{[f'n{i}' for i in range(8)]} True", text
    assert len([r for r in runs.starts if r[0] == "slow_echo"]) == 8
    assert not any("agent_tools" in t for t in events.texts)


async def test_timeout_covers_the_cell_and_no_call_is_left_running(
    make_session: MakeSession,
) -> None:
    finished: list[str] = []

    @tool
    async def hang(text: str) -> str:
        """Takes very long."""
        await asyncio.sleep(30)
        finished.append(text)
        return text

    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[hang])
    call = {
        "type": "tool_call",
        "id": "c1",
        "name": "run_code",
        "args": {"code": "agent_tools.hang(text='a')", "timeout": 3},
    }
    started = time.monotonic()
    message = await runtool.ainvoke(call)
    assert time.monotonic() - started < 25
    assert "timed out" in str(message.content).lower() or "timeout" in str(message.content)
    await asyncio.sleep(0.5)
    assert finished == []
    assert not [t for t in asyncio.all_tasks() if "hang" in repr(t.get_coro())]


def test_caps_on_calls_and_bytes(make_session: MakeSession) -> None:
    bridge = CodeTools([lookup], max_calls=3, max_result_bytes=10_000)
    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=bridge)
    text = str(invoke(runtool, "for i in range(5): agent_tools.lookup(item='a')").content)
    assert "limit of 3 agent_tools calls" in text, text

    @tool
    def big(n: int) -> str:
        """Returns n bytes."""
        return "x" * n

    runtool = E2BCodeInterpreterTool(
        session=make_session(), code_tools=CodeTools([big], max_result_bytes=10_000)
    )
    text = str(
        invoke(runtool, "print(len(agent_tools.big(n=5000)))\nagent_tools.big(n=6000)").content
    )
    assert "5000" in text, text
    assert "limit of 10000 bytes" in text, text


def test_a_tool_using_its_runtime_gets_it(make_session: MakeSession) -> None:
    seen: list[Any] = []

    @tool
    def whoami(runtime: ToolRuntime) -> str:
        """Says which call this is."""
        seen.append(runtime)
        return str(runtime.tool_call_id)

    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[whoami])
    runtime: ToolRuntime[Any, Any] = ToolRuntime(
        state={},
        context=None,
        config={},
        stream_writer=lambda _: None,
        tool_call_id="outer",
        store=None,
    )
    call = {
        "type": "tool_call",
        "id": "outer",
        "name": "run_code",
        "args": {"code": "print(agent_tools.whoami())", "runtime": runtime},
    }
    message = runtool.invoke(call)
    assert len(seen) == 1
    assert str(seen[0].tool_call_id).startswith("agent_tools-")
    assert str(seen[0].tool_call_id) in str(message.content)


def test_parallel_calls_from_async_code_on_the_blocking_path(make_session: MakeSession) -> None:
    # A blocking host answers the calls one after the other; the cell still gets every result.
    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[lookup])
    code = (
        "import asyncio\n"
        "got = await asyncio.gather(*[agent_tools.aio.lookup(item='x' * i) for i in range(6)])\n"
        "print([g['price'] for g in got])"
    )
    assert str(invoke(runtool, code).content).strip() == str(list(range(6)))


async def test_two_cells_at_once_on_one_session_both_get_answers(make_session: MakeSession) -> None:
    runtool = E2BCodeInterpreterTool(session=make_session(), code_tools=[lookup])
    code = "print(sum(agent_tools.lookup(item='ab')['price'] for _ in range(5)))"
    first, second = await asyncio.gather(ainvoke(runtool, code), ainvoke(runtool, code))
    assert str(first.content).strip() == "10", first.content
    assert str(second.content).strip() == "10", second.content


def test_an_unknown_language_reads_as_one_sentence_per_point(make_session: MakeSession) -> None:
    runtool = E2BCodeInterpreterTool(session=make_session())
    assert "bash" in str(RunCodeInput.model_fields["language"].description)
    call = {
        "type": "tool_call",
        "id": "c1",
        "name": "run_code",
        "args": {"code": "1", "language": "cobol"},
    }
    text = str(runtool.invoke(call).content)
    assert "Omit `language` to run Python." in text, text
    assert ".." not in text, text
