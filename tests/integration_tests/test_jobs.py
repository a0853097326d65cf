"""Background jobs (``session.jobs`` and the job tools) on the real SDK and the real runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage

from langchain_e2b import E2BSandboxSession, E2BSandboxToolkit

MakeSession = Callable[..., E2BSandboxSession]

pytestmark = pytest.mark.timeout(240)

SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("GET", self.path, flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"hello")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
open("/tmp/port", "w").write(str(server.server_port))
print("listening", flush=True)
server.serve_forever()
"""


def call(tool: Any, config: Any = None, **args: Any) -> ToolMessage:
    message = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": args}, config=config
    )
    assert isinstance(message, ToolMessage)
    return message


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_custom_event(self, name: str, data: Any, **kw: Any) -> None:
        if name == "e2b_output":
            self.texts.append(data["text"])


def test_a_server_job_read_incrementally_then_stopped(make_session: MakeSession) -> None:
    session = make_session()
    tools = {t.name: t for t in E2BSandboxToolkit(session=session).get_tools()}
    session.write_file("server.py", SERVER)
    started = call(tools["run_command"], command="python3 -u server.py", background=True)
    assert "Started job-1 in the background" in str(started.content)
    job_id = started.artifact["job_id"]
    pid = started.artifact["pid"]

    first = call(tools["job_output"], job_id=job_id, wait=0)
    for _ in range(50):
        if "listening" in str(first.content):
            break
        first = call(tools["job_output"], job_id=job_id, wait=0.2)
    assert "running" in str(first.content)
    assert "listening" in str(first.content), first.content

    hit = session.run_command("curl -s http://127.0.0.1:$(cat /tmp/port)/a")
    assert hit.stdout == "hello"
    second = call(tools["job_output"], job_id=job_id)
    for _ in range(50):
        if "GET /a" in str(second.content):
            break
        second = call(tools["job_output"], job_id=job_id, wait=0.2)
    # Only what is new since the last look.
    assert "GET /a" in str(second.content)
    assert "listening" not in str(second.content)
    assert "No new output" in str(call(tools["job_output"], job_id=job_id).content)

    status = call(tools["job_status"], job_id=job_id)
    assert f"{job_id} `python3 -u server.py`: running" in str(status.content)

    stopped = call(tools["job_stop"], job_id=job_id)
    assert "stopped (exit code 143)" in str(stopped.content), stopped.content
    assert stopped.artifact["exit_code"] == 143
    gone = session.run_command(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone")
    assert gone.stdout.strip() == "gone"
    refused = session.run_command("curl -s -m 2 http://127.0.0.1:$(cat /tmp/port)/b")
    assert refused.exit_code != 0
    listed = call(tools["job_status"])
    assert f"{job_id} `python3 -u server.py`: stopped" in str(listed.content)


def test_exit_code_and_output_streamed_while_waiting(make_session: MakeSession) -> None:
    session = make_session()
    tools = {t.name: t for t in E2BSandboxToolkit(session=session).get_tools()}
    started = call(
        tools["run_command"],
        command="for i in 1 2 3 4; do echo tick $i; sleep 0.3; done; exit 7",
        background=True,
    )
    events = Events()
    done = call(
        tools["job_output"],
        config={"callbacks": [events]},
        job_id=started.artifact["job_id"],
        wait=30,
    )
    assert "exited with code 7" in str(done.content), done.content
    assert done.artifact["exit_code"] == 7
    assert "".join(events.texts).count("tick") >= 3, events.texts
    assert "tick 4" in "".join(events.texts)
    status = call(tools["job_status"], job_id=started.artifact["job_id"])
    assert "exited with code 7" in str(status.content)


def test_long_output_gives_head_and_tail_within_the_budget(make_session: MakeSession) -> None:
    session = make_session()
    job = session.jobs.start("seq 1 100000")
    out = session.jobs.output(job.id, wait=30, max_bytes=2000)
    assert out.job.state == "exited"
    assert out.job.exit_code == 0
    assert out.text.startswith("1\n2\n3\n")
    assert out.text.rstrip().endswith("99999\n100000")
    assert out.omitted > 500_000
    assert len(out.text) < 2200
    assert f"{out.omitted} bytes of the middle not shown" in out.render()
    assert session.jobs.output(job.id).end == out.end


def test_unknown_job_is_a_clear_error(make_session: MakeSession) -> None:
    session = make_session()
    tools = {t.name: t for t in E2BSandboxToolkit(session=session).get_tools()}
    message = call(tools["job_status"], job_id="job-9")
    assert message.status == "error"
    assert "There is no job 'job-9'" in str(message.content)


async def test_async_api_and_close_stops_running_jobs(
    make_session: MakeSession, e2b_connection: dict[str, Any]
) -> None:
    session = make_session()
    job = await session.jobs.astart("echo up; sleep 600")
    out = await session.jobs.aoutput(job.id, wait=0.5)
    assert (await session.jobs.astatus(job.id)).state == "running"
    assert "up" in out.text or "up" in (await session.jobs.aoutput(job.id, wait=1)).text
    other = await session.jobs.astart("sleep 600")
    stopped = await session.jobs.astop(other.id)
    assert stopped.state == "stopped"
    # Leave the sandbox alive on close: its jobs must still be stopped.
    sandbox_id = session.sandbox_id
    await session.aclose(kill=False)
    assert [j.state for j in session.jobs.list()] == ["stopped", "stopped"]
    checker = E2BSandboxSession.connect(str(sandbox_id), **e2b_connection)
    try:
        check = checker.run_command(f"kill -0 {job.pid} 2>/dev/null && echo alive || echo gone")
        assert check.stdout.strip() == "gone"
    finally:
        checker.close(kill=True)


def test_a_job_whose_sandbox_was_replaced_is_lost(
    make_session: MakeSession, e2b_connection: dict[str, Any]
) -> None:
    from e2b_code_interpreter import Sandbox

    session = make_session()
    job = session.jobs.start("sleep 600")
    Sandbox.kill(str(session.sandbox_id), **e2b_connection)
    status = session.jobs.status(job.id)
    assert status.state == "lost"
    assert "start it again" in status.describe()
    assert session.jobs.output(job.id).text == ""
    assert session.jobs.running() == []
