"""Behaviour of the session and tools on the real SDK against the local runtime (or E2B cloud)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import pytest
from e2b_code_interpreter import Sandbox
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage

from langchain_e2b import (
    E2BCodeInterpreterTool,
    E2BSandboxSession,
    E2BSandboxToolkit,
    E2BShellTool,
)
from langchain_e2b.session import RESTART_NOTICE
from tests.integration_tests.conftest import running_with

MakeSession = Callable[..., E2BSandboxSession]


def call(tool: Any, **args: Any) -> ToolMessage:
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


def test_state_persists_across_calls(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    call(tool, code="import math\ndef area(r):\n    return math.pi * r * r")
    call(tool, code="values = [area(r) for r in (1, 2)]")
    message = call(tool, code="round(sum(values), 3)")
    assert message.content == "Out[3]: 15.708"


async def test_state_persists_across_async_calls(make_session: MakeSession) -> None:
    session = make_session()
    await session.arun_code("counter = 0")
    for _ in range(3):
        await session.arun_code("counter += 1")
    assert (await session.arun_code("counter")).text == "3"


def test_toolkit_tools_share_one_sandbox(make_session: MakeSession, e2b_connection: Any) -> None:
    session = make_session()
    with E2BSandboxToolkit(session=session) as toolkit:
        tools = {t.name: t for t in toolkit.get_tools()}
        call(tools["write_file"], path="data/numbers.csv", content="n\n1\n2\n3\n")
        shell = call(tools["run_command"], command="wc -l data/numbers.csv")
        assert str(shell.content).startswith("4 data/numbers.csv")
        code = call(
            tools["run_code"],
            code="sum(int(x) for x in open('data/numbers.csv').read().split()[1:])",
        )
        assert code.content == "Out[1]: 6"
        call(tools["edit_file"], path="data/numbers.csv", old_text="3\n", new_text="30\n")
        assert call(tools["read_file"], path="data/numbers.csv", start_line=4).content == (
            "[/home/user/data/numbers.csv: lines 4-4 of 4]\n30\n"
        )
        listing = call(tools["list_files"], path="data")
        assert "numbers.csv" in str(listing.content)
        sandbox_ids = {m.artifact.get("sandbox_id") for m in (shell, code, listing) if m.artifact}
        assert sandbox_ids == {session.sandbox_id}
        assert running_with(e2b_connection, session.metadata) == [session.sandbox_id]
    assert running_with(e2b_connection, session.metadata) == []


def test_long_output_is_truncated_and_full_text_saved(make_session: MakeSession) -> None:
    session = make_session(max_output_chars=2_000)
    tool = E2BCodeInterpreterTool(session=session)
    message = call(tool, code="for i in range(5000):\n    print(f'row {i}')")
    text = str(message.content)
    assert len(text) < 2_400
    assert text.startswith("row 0\n")
    assert text.rstrip().endswith("row 4999")
    assert message.artifact["truncated"] is True
    path = message.artifact["full_output_path"]
    assert path in text
    saved = session.read_file(path).decode()
    assert saved.splitlines() == [f"row {i}" for i in range(5000)]


def test_matplotlib_plot_becomes_an_image_block(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    message = call(
        tool,
        code="import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()",
    )
    assert isinstance(message.content, list), message.content
    images = [b for b in message.content if isinstance(b, dict) and b.get("type") == "image"]
    assert len(images) == 1
    assert images[0]["mime_type"] == "image/png"
    assert base64.b64decode(images[0]["base64"]).startswith(b"\x89PNG")
    pngs = [r["data"]["image/png"] for r in message.artifact["results"] if "image/png" in r["data"]]
    assert pngs == [images[0]["base64"]]


class EventLog(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))


def test_live_output_events_arrive_in_order(make_session: MakeSession) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    log = EventLog()
    code = "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.05)"
    message = tool.invoke(
        {"type": "tool_call", "id": "c", "name": "run_code", "args": {"code": code}},
        config={"callbacks": [log]},
    )
    assert log.events[0][0] == "e2b_sandbox"
    assert log.events[0][1]["event"] == "created"
    outputs = [d for name, d in log.events if name == "e2b_output"]
    assert "".join(d["text"] for d in outputs) == "".join(f"tick {i}\n" for i in range(4))
    assert {d["sandbox_id"] for d in outputs} == {session.sandbox_id}
    assert message.content == "tick 0\ntick 1\ntick 2\ntick 3"


async def test_astream_events_show_live_output(make_session: MakeSession) -> None:
    tool = E2BShellTool(session=make_session())
    seen: list[str] = []
    async for event in tool.astream_events({"command": "echo one; echo two >&2"}, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == "e2b_output":
            seen.append(f"{event['data']['stream']}:{event['data']['text']}")
    assert "stdout:one\n" in seen
    assert "stderr:two\n" in seen


def test_timeout_interrupts_and_state_survives(make_session: MakeSession) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    call(tool, code="kept = 'still here'")
    message = call(
        tool, code="import time\nprint('working', flush=True)\ntime.sleep(60)", timeout=2
    )
    text = str(message.content)
    assert "working" in text
    assert "timed out after 2 seconds" in text
    assert message.artifact["timed_out"] is True
    # E2B shows a string result without its quotes.
    assert call(tool, code="kept").content == "Out[3]: still here"


def test_command_timeout_kills_the_process(make_session: MakeSession) -> None:
    session = make_session()
    result = session.run_command("echo started; sleep 60; echo never", timeout=2)
    assert result.timed_out
    assert result.stdout == "started\n"
    # The sandbox kills the command's whole process group; wait for it rather than race it.
    gone = session.run_command(
        "for i in $(seq 100); do pgrep -f '[s]leep 60' >/dev/null || break; sleep 0.1; done; "
        "pgrep -f '[s]leep 60' || echo gone"
    )
    assert gone.stdout == "gone\n"


def test_recreate_and_tell_after_sandbox_killed(
    make_session: MakeSession, e2b_connection: Any
) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    call(tool, code="x = 1")
    first = session.sandbox_id
    assert first is not None
    Sandbox.kill(first, **e2b_connection)

    message = call(tool, code="print('fresh')")
    text = str(message.content)
    assert text.startswith(RESTART_NOTICE)
    assert "fresh" in text
    assert session.sandbox_id not in (None, first)
    after = call(tool, code="x")
    assert "NameError" in str(after.content)
    assert running_with(e2b_connection, session.metadata) == [session.sandbox_id]


async def test_ten_parallel_async_calls_create_one_sandbox(
    make_session: MakeSession, e2b_connection: Any
) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    messages = await asyncio.gather(
        *(
            tool.ainvoke(
                {
                    "type": "tool_call",
                    "id": f"c{i}",
                    "name": "run_code",
                    "args": {"code": f"{i} * 10"},
                }
            )
            for i in range(10)
        )
    )
    assert sorted(str(m.content).split(": ")[1] for m in messages) == sorted(
        str(i * 10) for i in range(10)
    )
    assert running_with(e2b_connection, session.metadata) == [session.sandbox_id]


def test_close_leaves_no_sandbox_running(make_session: MakeSession, e2b_connection: Any) -> None:
    session = make_session()
    session.run_command("true")
    asyncio.run(session.arun_code("1"))  # a second (async) handle on the same sandbox
    assert running_with(e2b_connection, session.metadata) == [session.sandbox_id]
    session.close()
    assert running_with(e2b_connection, session.metadata) == []


def test_background_command_keeps_running_and_logs(make_session: MakeSession) -> None:
    session = make_session()
    tool = E2BShellTool(session=session)
    message = call(tool, command="echo ready; sleep 30", background=True)
    pid, log_path = message.artifact["pid"], message.artifact["log_path"]
    assert f"pid {pid}" in str(message.content)
    # The command runs on after the call returned; its output lands in the log file.
    check = session.run_command(
        f"for i in $(seq 50); do grep -q ready {log_path} && break; sleep 0.1; done; "
        f"cat {log_path}; kill -0 {pid} && echo alive"
    )
    assert check.stdout == "ready\nalive\n"


def test_model_fixable_mistakes_are_error_messages(make_session: MakeSession) -> None:
    session = make_session()
    toolkit = E2BSandboxToolkit(session=session)
    tools = {t.name: t for t in toolkit.get_tools()}
    session.write_file("bin.dat", bytes(range(256)))
    for name, args, expected in [
        ("read_file", {"path": "missing.txt"}, "No such file"),
        ("read_file", {"path": "bin.dat"}, "binary"),
        ("edit_file", {"path": "bin.dat", "old_text": "a", "new_text": "b"}, "binary"),
        ("install_packages", {"packages": ["x; rm -rf ~"]}, "not a valid pip package spec"),
    ]:
        message = call(tools[name], **args)
        assert message.status == "error", (name, message.content)
        assert expected in str(message.content)


@pytest.mark.slow
def test_keepalive_outlives_sandbox_timeout_while_idle_sandbox_expires(
    make_session: MakeSession, e2b_connection: Any
) -> None:
    session = make_session(sandbox_timeout=3)
    session.run_code("alive = True")
    for _ in range(6):  # about twice the sandbox timeout, with calls in between
        result = session.run_code("import time; time.sleep(1); alive")
        assert result.notice is None
        assert result.text == "True"
    # Left idle past its timeout, the sandbox expires (the backend stops listing it), and the
    # next call says so.
    tag = {"test_run": session.metadata["test_run"]}
    deadline = time.monotonic() + 30
    while running_with(e2b_connection, tag) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert running_with(e2b_connection, tag) == []
    assert session.run_code("1").notice == RESTART_NOTICE
