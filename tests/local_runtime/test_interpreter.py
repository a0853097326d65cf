"""The in-sandbox code interpreter, served by a real uvicorn server and driven over HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from langchain_e2b.local.interpreter import Interpreter

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local runtime is Linux-only")


class Served:
    """An interpreter behind uvicorn on a loopback port."""

    def __init__(self, interpreter: Interpreter, url: str, home: str) -> None:
        self.interpreter = interpreter
        self.url = url
        self.home = home
        self.client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120.0))

    async def execute(self, code: str, **fields: Any) -> list[dict[str, Any]]:
        """Run code and return every NDJSON line of the response."""
        body = {"code": code, "context_id": None, "language": None, "env_vars": None, **fields}
        lines: list[dict[str, Any]] = []
        async with self.client.stream("POST", "/execute", json=body) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line:
                    lines.append(json.loads(line))
        assert lines[-1] == {"type": "end_of_execution"}
        return lines


def of_type(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["type"] == kind]


def main_text(lines: list[dict[str, Any]]) -> str | None:
    for line in of_type(lines, "result"):
        if line["is_main_result"]:
            return line.get("text")
    return None


def stdout(lines: list[dict[str, Any]]) -> str:
    return "".join(line["text"] for line in of_type(lines, "stdout"))


def base_env(home: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "GLOBAL_ONE": "base",
        # As the jail sets it for commands; kernels must still show figures inline.
        "MPLBACKEND": "Agg",
    }


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[Served]:
    home = tempfile.mkdtemp(prefix="interp-home-")
    # ipc socket paths must stay short, so not under pytest's long tmp_path.
    run_dir = tempfile.mkdtemp(prefix="ir-", dir="/tmp")
    interpreter = Interpreter(home=home, env=base_env(home), run_dir=run_dir)
    await interpreter.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(interpreter, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    result = Served(interpreter, f"http://127.0.0.1:{port}", home)
    try:
        yield result
    finally:
        await result.client.aclose()
        server.should_exit = True
        await task
        await interpreter.close()
        sock.close()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)


async def test_expression_result_and_execution_count(served: Served) -> None:
    first = await served.execute("1 + 1")
    assert main_text(first) == "2"
    count = of_type(first, "number_of_executions")[0]["execution_count"]
    second = await served.execute("2 * 21")
    assert main_text(second) == "42"
    assert of_type(second, "number_of_executions")[0]["execution_count"] == count + 1


async def test_state_persists_between_executions(served: Served) -> None:
    await served.execute("persisted = [1, 2, 3]")
    assert main_text(await served.execute("sum(persisted)")) == "6"


async def test_stdout_and_stderr_in_order_with_timestamps(served: Served) -> None:
    lines = await served.execute(
        "import sys\nprint('one')\nsys.stdout.flush()\nprint('two', file=sys.stderr)\n"
        "sys.stderr.flush()\nprint('three')"
    )
    logs = [(line["type"], line["text"]) for line in lines if line["type"] in ("stdout", "stderr")]
    assert logs == [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n")]
    for line in of_type(lines, "stdout"):
        assert "T" in line["timestamp"]


async def test_stdout_arrives_while_code_still_runs(served: Served) -> None:
    body = {"code": "import time\nprint('early', flush=True)\ntime.sleep(1.5)\nprint('late')"}
    async with served.client.stream("POST", "/execute", json=body) as response:
        seen: list[str] = []
        async for line in response.aiter_lines():
            obj = json.loads(line)
            if obj["type"] == "stdout":
                seen.append(obj["text"])
                # The kernel may send a line in pieces (it flushes every 0.05 s).
                if "\n" in obj["text"]:
                    break
    # The first line was readable before the cell finished: only 'early' can be there yet.
    assert "".join(seen) == "early\n"
    # The cell still finishes, and the context stays usable.
    assert main_text(await served.execute("'after'")) == "after"


async def test_error_name_value_traceback(served: Served) -> None:
    lines = await served.execute("def boom():\n    raise ValueError('bad value')\nboom()")
    (error,) = of_type(lines, "error")
    assert error["name"] == "ValueError"
    assert error["value"] == "bad value"
    assert isinstance(error["traceback"], str)
    assert "boom()" in error["traceback"]
    assert "\x1b[" not in error["traceback"]


async def test_string_result_without_quotes_and_json_for_dicts(served: Served) -> None:
    assert main_text(await served.execute("'hello'")) == "hello"
    (result,) = of_type(await served.execute("{'a': [1, 2]}"), "result")
    assert result["json"] == {"a": [1, 2]}


async def test_display_calls_are_not_main_results(served: Served) -> None:
    lines = await served.execute(
        "from IPython.display import display, HTML, Markdown\n"
        "display(HTML('<b>x</b>'))\ndisplay(Markdown('# t'))\n7"
    )
    results = of_type(lines, "result")
    assert [r["is_main_result"] for r in results] == [False, False, True]
    assert results[0]["html"] == "<b>x</b>"
    assert results[1]["markdown"] == "# t"
    assert results[2]["text"] == "7"


async def test_unknown_mime_types_go_to_extra(served: Served) -> None:
    lines = await served.execute(
        "from IPython.display import display\n"
        "display({'application/x-custom': 'payload', 'text/plain': 'p'}, raw=True)"
    )
    (result,) = of_type(lines, "result")
    assert result["extra"] == {"application/x-custom": "payload"}
    assert result["text"] == "p"


async def test_matplotlib_open_figure_gives_png_and_chart(served: Served) -> None:
    lines = await served.execute(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9], label='sq')\nplt.title('Squares')\nplt.xlabel('x')"
    )
    figures = [r for r in of_type(lines, "result") if "png" in r]
    assert len(figures) == 1
    figure = figures[0]
    assert base64.b64decode(figure["png"]).startswith(b"\x89PNG")
    assert figure["chart"]["type"] == "line"
    assert figure["chart"]["title"] == "Squares"
    assert figure["chart"]["elements"][0]["points"][2] == [3, 9]


async def test_matplotlib_show_and_bar_chart(served: Served) -> None:
    lines = await served.execute(
        "import matplotlib.pyplot as plt\n"
        "plt.bar(['a', 'b'], [3, 5])\nplt.show()\nprint('after show')"
    )
    figures = [r for r in of_type(lines, "result") if "png" in r]
    assert len(figures) == 1
    assert figures[0]["chart"]["type"] == "bar"
    assert stdout(lines) == "after show\n"
    # The figure was shown once and closed: the next cell shows nothing.
    assert not [r for r in of_type(await served.execute("1"), "result") if "png" in r]


async def test_dataframe_gives_data_and_html(served: Served) -> None:
    lines = await served.execute(
        "import pandas as pd\n"
        "pd.DataFrame({'a': [1, 2], 'b': ['x', None], 'c': [1.5, float('nan')],"
        " 't': pd.to_datetime(['2024-01-01', '2024-01-02'])})"
    )
    (result,) = of_type(lines, "result")
    assert result["is_main_result"]
    assert result["data"]["a"] == [1, 2]
    assert result["data"]["b"] == ["x", None]
    assert result["data"]["c"] == [1.5, None]
    assert result["data"]["t"][0].startswith("2024-01-01")
    assert "<table" in result["html"]


async def test_per_execution_env_vars_are_restored(served: Served) -> None:
    lines = await served.execute(
        "import os\n(os.environ.get('ONLY_NOW'), os.environ.get('GLOBAL_ONE'))",
        env_vars={"ONLY_NOW": "yes", "GLOBAL_ONE": "overridden"},
    )
    assert main_text(lines) == "('yes', 'overridden')"
    after = await served.execute(
        "import os\n(os.environ.get('ONLY_NOW'), os.environ['GLOBAL_ONE'])"
    )
    assert main_text(after) == "(None, 'base')"


async def test_env_vars_reach_subprocesses(served: Served) -> None:
    lines = await served.execute(
        "import subprocess\nsubprocess.run(['sh', '-c', 'echo $SUB_VAR'], capture_output=True,"
        " text=True).stdout.strip()",
        env_vars={"SUB_VAR": "from-env"},
    )
    assert main_text(lines) == "from-env"


async def test_kernel_env_is_the_given_base_env(served: Served) -> None:
    lines = await served.execute(
        "import os\n(os.environ['HOME'], 'PYTEST_CURRENT_TEST' in os.environ)"
    )
    assert main_text(lines) == repr((served.home, False))


async def test_update_env_reaches_running_and_new_kernels(served: Served) -> None:
    await served.interpreter.update_env({"LATE_GLOBAL": "g1"})
    assert main_text(await served.execute("import os\nos.environ.get('LATE_GLOBAL')")) == "g1"
    created = (await served.client.post("/contexts", json={})).json()
    lines = await served.execute(
        "import os\nos.environ.get('LATE_GLOBAL')", context_id=created["id"]
    )
    assert main_text(lines) == "g1"
    assert (await served.client.delete(f"/contexts/{created['id']}")).status_code < 300


async def test_bad_requests(served: Served) -> None:
    both = await served.client.post(
        "/execute", json={"code": "1", "context_id": "x", "language": "python"}
    )
    assert both.status_code == 400
    unknown = await served.client.post("/execute", json={"code": "1", "context_id": "nope"})
    assert unknown.status_code == 404
    assert "nope" in unknown.text
    language = await served.client.post("/execute", json={"code": "1", "language": "r"})
    assert language.status_code == 400
    assert "python" in language.text
    assert "'r'" in language.text
    bad_env = await served.client.post("/execute", json={"code": "1", "env_vars": {"A=B": "x"}})
    assert bad_env.status_code == 400


async def test_explicit_python_language_uses_default_context(served: Served) -> None:
    await served.execute("in_default = 'here'")
    assert main_text(await served.execute("in_default", language="python")) == "here"


async def test_contexts_crud(served: Served) -> None:
    sub = os.path.join(served.home, "work")
    os.makedirs(sub, exist_ok=True)
    created = await served.client.post("/contexts", json={"language": "python", "cwd": sub})
    assert created.status_code == 200
    context = created.json()
    assert context["language"] == "python"
    assert context["cwd"] == sub
    cid = context["id"]

    listed = (await served.client.get("/contexts")).json()
    assert cid in [c["id"] for c in listed]
    assert "default" not in [c["id"] for c in listed]

    assert main_text(await served.execute("import os\nos.getcwd()", context_id=cid)) == sub
    await served.execute("only_here = 1", context_id=cid)
    isolated = await served.execute("only_here")
    assert of_type(isolated, "error")[0]["name"] == "NameError"

    restarted = await served.client.post(f"/contexts/{cid}/restart")
    assert restarted.status_code < 300
    lost = await served.execute("only_here", context_id=cid)
    assert of_type(lost, "error")[0]["name"] == "NameError"

    assert (await served.client.delete(f"/contexts/{cid}")).status_code < 300
    assert (await served.client.delete(f"/contexts/{cid}")).status_code == 404
    gone = await served.client.post("/execute", json={"code": "1", "context_id": cid})
    assert gone.status_code == 404
    assert cid not in [c["id"] for c in (await served.client.get("/contexts")).json()]


async def test_create_context_errors(served: Served) -> None:
    missing = await served.client.post("/contexts", json={"cwd": "/definitely/not/here"})
    assert missing.status_code == 400
    language = await served.client.post("/contexts", json={"language": "java"})
    assert language.status_code == 400
    assert "no kernel for Java" in language.text
    assert "python" in language.text
    unknown = await served.client.post("/contexts/nope/restart")
    assert unknown.status_code == 404


async def test_executions_on_one_context_are_serialised(served: Served) -> None:
    first = (
        "import time\nfor i in range(5):\n    print('first', i, flush=True)\n    time.sleep(0.1)"
    )
    second = "for i in range(5):\n    print('second', i)"
    a, b = await asyncio.gather(served.execute(first), served.execute(second))
    assert stdout(a).split() == " ".join(f"first {i}" for i in range(5)).split()
    assert stdout(b).split() == " ".join(f"second {i}" for i in range(5)).split()


async def test_keepalive_while_silent(served: Served) -> None:
    lines = await served.execute("import time\ntime.sleep(6)\n'done'")
    assert of_type(lines, "keepalive")
    assert main_text(lines) == "done"


async def test_client_disconnect_interrupts_and_keeps_state(served: Served) -> None:
    await served.execute("kept = 'still here'\nticks = 0")
    body = {"code": "print('looping', flush=True)\nwhile True:\n    ticks += 1"}
    async with served.client.stream("POST", "/execute", json=body) as response:
        async for line in response.aiter_lines():
            if json.loads(line)["type"] == "stdout":
                break
    # Leaving the block closed the connection mid-stream: the loop must be interrupted.
    lines = await served.execute("import sys\n(kept, sys.last_type.__name__, ticks > 0)")
    assert main_text(lines) == "('still here', 'KeyboardInterrupt', True)"


async def test_kernel_death_is_reported_and_context_recovers(served: Served) -> None:
    created = (await served.client.post("/contexts", json={})).json()
    cid = created["id"]
    await served.execute("doomed = 1", context_id=cid)
    lines = await served.execute("import os\nos._exit(3)", context_id=cid)
    (error,) = of_type(lines, "error")
    assert error["name"] == "KernelDied"
    assert "restarted" in error["value"]
    assert "lost" in error["value"]
    after = await served.execute("doomed", context_id=cid)
    assert of_type(after, "error")[0]["name"] == "NameError"
    assert main_text(await served.execute("40 + 2", context_id=cid)) == "42"
    await served.client.delete(f"/contexts/{cid}")


async def test_sigkill_mentions_memory(served: Served) -> None:
    created = (await served.client.post("/contexts", json={})).json()
    lines = await served.execute(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", context_id=created["id"]
    )
    (error,) = of_type(lines, "error")
    assert "SIGKILL" in error["value"]
    assert "memory" in error["value"]
    await served.client.delete(f"/contexts/{created['id']}")


async def test_non_utf8_output_is_replaced(served: Served) -> None:
    lines = await served.execute(
        "import os, sys\nos.write(1, b'fd:\\xff\\xfe ok\\n')\n"
        "sys.stdout.write('lone:\\udcff ok\\n')\nsys.stdout.flush()\n'x\\udcffy'"
    )
    text = stdout(lines)
    assert "fd:" in text
    assert "lone:" in text
    assert text.count(" ok") == 2
    assert main_text(lines) is not None


async def test_large_output_streams(served: Served) -> None:
    size = 0
    count = 0
    body = {"code": "for i in range(200):\n    print('y' * 262143)"}
    async with served.client.stream("POST", "/execute", json=body) as response:
        async for line in response.aiter_lines():
            obj = json.loads(line)
            if obj["type"] == "stdout":
                size += len(obj["text"])
                count += 1
    assert size == 200 * 262144
    assert count > 1
    assert main_text(await served.execute("'alive'")) == "alive"


async def test_health(served: Served) -> None:
    assert (await served.client.get("/health")).status_code == 200


async def test_user_code_can_still_import_debugpy(served: Served) -> None:
    lines = await served.execute("import debugpy\ndebugpy.__name__")
    assert main_text(lines) == "debugpy"


async def test_kernel_death_between_executions_is_told_next_time(served: Served) -> None:
    cid = (await served.client.post("/contexts", json={})).json()["id"]
    await served.execute(
        "import os, threading\nstate = 1\nthreading.Timer(0.2, lambda: os._exit(0)).start()",
        context_id=cid,
    )
    kernel = served.interpreter._contexts[cid]
    while await kernel.is_alive():  # noqa: ASYNC110 - waiting on another process
        await asyncio.sleep(0.05)
    lines = await served.execute("'state' in globals()", context_id=cid)
    notice = "".join(line["text"] for line in of_type(lines, "stderr"))
    assert "restarted" in notice
    assert "lost" in notice
    assert main_text(lines) == "False"
    await served.client.delete(f"/contexts/{cid}")


async def test_restart_during_execution_ends_it(served: Served) -> None:
    cid = (await served.client.post("/contexts", json={})).json()["id"]
    body = {"code": "import time\nprint('busy', flush=True)\ntime.sleep(60)", "context_id": cid}
    lines: list[dict[str, Any]] = []
    async with served.client.stream("POST", "/execute", json=body) as response:
        async for line in response.aiter_lines():
            lines.append(json.loads(line))
            if lines[-1]["type"] == "stdout":
                restarted = await served.client.post(f"/contexts/{cid}/restart")
                assert restarted.status_code < 300
    errors = of_type(lines, "error")
    assert [e["name"] for e in errors] == ["ContextRestarting"]
    assert lines[-1]["type"] == "end_of_execution"
    assert main_text(await served.execute("1 + 1", context_id=cid)) == "2"
    await served.client.delete(f"/contexts/{cid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


async def test_close_leaves_no_processes() -> None:
    home = tempfile.mkdtemp(prefix="interp-home-")
    run_dir = tempfile.mkdtemp(prefix="ir-", dir="/tmp")
    interpreter = Interpreter(home=home, env=base_env(home), run_dir=run_dir)
    await interpreter.start()
    try:
        kernel = next(iter(interpreter._contexts.values()))
        kc = kernel.client
        msg_id = kc.execute(
            "import os, subprocess\nchild = subprocess.Popen(['sleep', '300'])\n"
            "print(os.getpid(), child.pid)"
        )
        pids: list[int] = []
        while not pids:
            msg = await kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                pids = [int(p) for p in msg["content"]["text"].split()]
        assert all(_alive(pid) for pid in pids)
    finally:
        await interpreter.close()
    assert not any(_alive(pid) for pid in pids)
    assert not [name for name in os.listdir(run_dir) if name != "kernels"]
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
