"""Faults under the toolkit: each one is survived, the model is told, and nothing leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import httpx
from e2b_code_interpreter import AsyncSandbox, Sandbox

from langchain_e2b import E2BSandboxSession
from langchain_e2b.local import LocalRuntime
from langchain_e2b.tools import E2BCodeInterpreterTool, E2BShellTool
from tests.reliability.conftest import Resources, assert_no_leaks, count, runtime_processes


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": f"call-{name}", "name": name, "args": args}


def _run(tool: Any, **args: Any) -> str:
    message = tool.invoke(_call(tool.name, **args))
    assert message.status == "success", message.content
    content = message.content
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)


def _wait_for(predicate: Any, what: str) -> None:
    for _ in range(600):
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def _file_exists(runtime: LocalRuntime, sandbox_id: str, path: str) -> bool:
    sandbox = Sandbox.connect(sandbox_id, **runtime.connection_options())
    return bool(sandbox.files.exists(path))


def test_sandbox_killed_while_code_runs(
    runtime: LocalRuntime, baseline: Resources, make_session: Any
) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    _run(tool, code="x = 1")
    first = session.sandbox_id
    assert first is not None
    results: list[str] = []
    code = "import time\nopen('/tmp/started', 'w').close()\ntime.sleep(3)\nprint('finished')"
    worker = threading.Thread(target=lambda: results.append(_run(tool, code=code)))
    worker.start()
    _wait_for(lambda: _file_exists(runtime, first, "/tmp/started"), "the code to start")
    Sandbox.kill(first, **runtime.connection_options())
    worker.join()
    [text] = results
    assert "restarted" in text
    assert "gone" in text or "lost" in text
    assert session.sandbox_id != first
    assert "NameError" in _run(tool, code="print(x)")  # the new sandbox has none of the old state
    assert "ok" in _run(tool, code="print('ok')")
    session.close()
    assert_no_leaks(runtime, baseline)


def test_runtime_restarted_between_two_calls() -> None:
    first = LocalRuntime(pool_size=0).start()
    port, key = first.port, first.api_key
    session = E2BSandboxSession(**first.connection_options())
    try:
        tool = E2BCodeInterpreterTool(session=session)
        _run(tool, code="x = 1")
        old_id = session.sandbox_id
        first.stop()
        assert runtime_processes(first) == []
        second = LocalRuntime(pool_size=0, port=port, api_key=key).start()
        try:
            text = _run(tool, code="print('after restart')")
            assert "restarted" in text
            assert "after restart" in text
            assert session.sandbox_id != old_id
            assert "NameError" in _run(tool, code="x")
            session.close()
            assert second.gateway is not None
            assert second.gateway.sandboxes == {}
        finally:
            second.stop()
        assert runtime_processes(second) == []
    finally:
        session.close()
        first.stop()


def test_client_disconnect_interrupts_the_kernel(
    runtime: LocalRuntime, baseline: Resources
) -> None:
    sandbox = Sandbox.create(**runtime.connection_options())
    try:
        sandbox.run_code("state = 'kept'")
        kernels = count(runtime).kernels
        headers = {
            "E2b-Sandbox-Id": sandbox.sandbox_id,
            "E2b-Sandbox-Port": "49999",
            "X-Access-Token": sandbox._envd_access_token or "",
        }
        code = (
            "import time\nstep = -1\nprint('looping', flush=True)\n"
            "for step in range(6000):\n    time.sleep(0.01)"
        )
        with (
            httpx.Client(base_url=runtime.url, timeout=60) as client,
            client.stream("POST", "/execute", json={"code": code}, headers=headers) as response,
        ):
            assert response.status_code == 200
            # The cell is in its loop once its print arrives (the first line of the stream can
            # come before the code starts); now go away.
            for line in response.iter_lines():
                if "looping" in line:
                    break
        # The next execution waits for the interrupted one, then runs in the same kernel.
        execution = sandbox.run_code("print(state, step < 5999)")
        assert execution.error is None, execution.error
        assert "".join(execution.logs.stdout).split() == ["kept", "True"]
        assert count(runtime).kernels == kernels
    finally:
        sandbox.kill()
    assert_no_leaks(runtime, baseline)


def test_kernel_killed_by_the_oom_killer(
    runtime: LocalRuntime, baseline: Resources, make_session: Any
) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    _run(tool, code="x = 1")
    [(pid, _)] = [p for p in runtime_processes(runtime) if "kernelapp" in p[1]]
    # What the kernel's OOM killer does to the biggest process: SIGKILL, from outside the jail.
    os.kill(pid, signal.SIGKILL)
    text = _run(tool, code="print(x)")
    assert "restarted" in text
    assert "lost" in text
    assert "SIGKILL" in text
    text = _run(tool, code="print(x)")
    assert "NameError" in text
    assert "2" in _run(tool, code="print(1 + 1)")
    # Also when it dies in the middle of a cell.
    text = _run(tool, code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert "died" in text
    assert "lost" in text
    assert "3" in _run(tool, code="print(1 + 2)")
    assert count(runtime).kernels == 1
    session.close()
    assert_no_leaks(runtime, baseline)


def test_timeout_during_a_shell_command(
    runtime: LocalRuntime, baseline: Resources, make_session: Any
) -> None:
    session = make_session()
    shell = E2BShellTool(session=session)
    text = _run(shell, command="echo begun; sleep 120 & sleep 110", timeout=2)
    assert "timed out" in text.lower()
    assert "begun" in text
    # The client gives up at the same moment the sandbox kills the command's process group,
    # so the kill may land a moment after the result: wait for it, boundedly.
    _wait_for(
        lambda: "sleep 1" not in _run(shell, command="ps -e -o args= | grep '[s]leep 1'"),
        "the timed-out command and its background child to be killed",
    )
    assert "hello" in _run(shell, command="echo hello")
    session.close()
    assert_no_leaks(runtime, baseline)


def test_timeout_during_run_code(
    runtime: LocalRuntime, baseline: Resources, make_session: Any
) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    _run(tool, code="x = 'kept'")
    text = _run(tool, code="print('begun', flush=True)\nwhile True:\n    pass", timeout=2)
    assert "timed out" in text.lower() or "timeout" in text.lower()
    assert "begun" in text
    assert "kept" in _run(tool, code="print(x)")
    session.close()
    assert_no_leaks(runtime, baseline)


async def test_two_sessions_killing_and_running_concurrently(
    runtime: LocalRuntime, baseline: Resources, make_session: Any
) -> None:
    sessions = [make_session(), make_session()]
    for index, session in enumerate(sessions):
        await session.arun_code(f"me = {index}")

    async def kill(session: E2BSandboxSession) -> None:
        assert session.sandbox_id is not None
        await AsyncSandbox.kill(session.sandbox_id, **runtime.connection_options())

    warm: Resources | None = None
    for round_ in range(4):
        if round_ == 1:
            # The async HTTP pools of this event loop are open and in use from here on.
            warm = count(runtime)
        victim, survivor = sessions[round_ % 2], sessions[(round_ + 1) % 2]
        killed, ran, _ = await asyncio.gather(
            victim.arun_code("print('victim', 6 * 7)"),
            survivor.arun_code("print('survivor', me)"),
            kill(victim),
            return_exceptions=True,
        )
        assert not isinstance(ran, BaseException), ran
        assert ran.stdout.split() == ["survivor", str(sessions.index(survivor))]
        assert not isinstance(killed, BaseException), killed
        assert "42" in killed.stdout
        # The victim either finished before the kill or was recreated and told so; either way
        # its next call runs in a new sandbox, and says so, if this one did not.
        again = await victim.arun_code(f"me = {sessions.index(victim)}")
        assert killed.notice or again.notice
        assert "restarted" in (killed.notice or again.notice or "")
        after = await victim.arun_code("print('still', me)")
        assert after.stdout.split()[0] == "still"
    for session in sessions:
        await session.aclose()
    assert warm is not None
    assert_no_leaks(runtime, Resources(**{**vars(baseline), "fds": warm.fds}))
