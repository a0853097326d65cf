"""The session core on SDK fakes: mixed sync/async use, errors in our tree, backend resolution,
bounded output, the history recorder and notices that name their cause."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from e2b import InvalidArgumentException, SandboxException
from e2b_code_interpreter import Execution, OutputMessage
from e2b_code_interpreter.models import parse_output
from e2b_fakes import FakeBackend

from langchain_e2b import _sdk
from langchain_e2b._format import CodeResult, CommandResult, OutputCapture
from langchain_e2b.errors import (
    E2BBackendUnreachableError,
    E2BFileError,
    E2BFileNotFoundError,
    E2BInvalidArgumentError,
    E2BToolInputError,
)
from langchain_e2b.notebook import HistoryRecorder, to_notebook
from langchain_e2b.session import (
    EMBEDDED_ELSEWHERE,
    RESTART_NOTICE,
    E2BSandboxSession,
    restart_notice,
)

MakeSession = Callable[..., E2BSandboxSession]


# --- one locking rule for threads and event loops ---------------------------------------------


def test_threads_and_event_loops_at_once_share_one_sandbox(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    start = threading.Barrier(5)
    errors: list[BaseException] = []
    texts: list[str] = []

    def thread_work(n: int) -> None:
        try:
            start.wait()
            texts.append(str(session.run_code(f"{n} + 100").text))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    async def loop_work() -> list[str | None]:
        start.wait()
        results = await asyncio.gather(*(session.arun_code(f"{n} + 200") for n in range(4)))
        return [r.text for r in results]

    threads = [threading.Thread(target=thread_work, args=(n,)) for n in range(3)]
    loop_thread_texts: list[str | None] = []
    other_loop = threading.Thread(target=lambda: loop_thread_texts.extend(asyncio.run(loop_work())))
    for t in [*threads, other_loop]:
        t.start()
    loop_texts = asyncio.run(loop_work())
    for t in [*threads, other_loop]:
        t.join(timeout=30)
    assert errors == []
    assert sorted(texts) == ["100", "101", "102"]
    assert loop_texts == loop_thread_texts == ["200", "201", "202", "203"]
    assert len(backend.created) == 1


def test_a_replacement_by_one_caller_is_seen_by_all(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    session.run_code("x = 1")
    backend.kill(session.sandbox_id or "")

    async def both() -> list[CodeResult]:
        return list(await asyncio.gather(session.arun_code("1"), session.arun_code("2")))

    results = asyncio.run(both())
    assert len(backend.running()) == 1
    assert all(r.notice == RESTART_NOTICE for r in results)


async def test_a_cancelled_creator_hands_over_to_a_waiting_caller(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    creator = asyncio.create_task(session.arun_code("1"))
    await asyncio.sleep(0)  # the creator claims the move and awaits the (slow) create
    waiter = asyncio.create_task(session.arun_code("2"))
    await asyncio.sleep(0)
    creator.cancel()
    assert (await waiter).text == "2"
    assert creator.cancelled()
    assert len(backend.running()) == 1


async def test_blocking_call_inside_the_creating_loop_fails_instead_of_hanging(
    make_session: MakeSession,
) -> None:
    session = make_session()
    creator = asyncio.create_task(session.arun_code("1"))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="use the async methods"):
        session.run_code("2")
    assert (await creator).text == "1"


# --- errors: our tree, never the SDK's ----------------------------------------------------------


def test_file_errors_are_ours_and_still_file_not_found(make_session: MakeSession) -> None:
    session = make_session()
    with pytest.raises(E2BFileNotFoundError) as caught:
        session.read_file("missing.txt")
    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, E2BToolInputError)
    assert caught.value.path == "/home/user/missing.txt"
    assert caught.value.args[0] == "/home/user/missing.txt"
    assert "list_files" in str(caught.value)


def test_sdk_refusals_become_model_fixable_errors(
    make_session: MakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = make_session()
    sandbox = session.ensure_sandbox()

    def refuse_cwd(*args: Any, **kwargs: Any) -> Any:
        raise InvalidArgumentException("cwd '/nope' is not an existing directory")

    monkeypatch.setattr(sandbox.commands, "run", refuse_cwd)
    with pytest.raises(E2BInvalidArgumentError, match="mkdir -p /nope"):
        session.run_command("true", cwd="/nope")

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise SandboxException("permission denied")

    monkeypatch.setattr(sandbox.files, "write", denied)
    with pytest.raises(E2BFileError, match="Could not write /etc/x: permission denied"):
        session.write_file("/etc/x", "data")
    assert session.run_code("1").notice is None  # none of these looked like a dead sandbox


def test_unknown_language_is_the_models_to_fix(make_session: MakeSession) -> None:
    with pytest.raises(E2BInvalidArgumentError, match="Omit `language`"):
        make_session().run_code("puts 1", language="ruby")


def test_unreachable_backend_is_reported_as_such_with_its_address() -> None:
    # Nothing listens on port 9 of the loopback: the real SDK gets a refused connection.
    session = E2BSandboxSession(
        api_key="k", api_url="http://127.0.0.1:9", sandbox_url="http://127.0.0.1:9"
    )
    with pytest.raises(E2BBackendUnreachableError) as caught:
        session.run_code("1")
    message = str(caught.value)
    assert "http://127.0.0.1:9" in message
    assert "unreachable" in message
    assert "E2B cloud" not in message
    assert "stopped again" not in message


# --- backend resolution -----------------------------------------------------------------------


def test_backend_is_resolved_once_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("E2B_API_KEY", "env-key")
    monkeypatch.delenv("E2B_API_URL", raising=False)
    with caplog.at_level(logging.INFO, logger="langchain_e2b"):
        first = E2BSandboxSession().backend
        second = E2BSandboxSession().backend
    assert first is second
    lines = [r.getMessage() for r in caplog.records if "E2B backend" in r.getMessage()]
    assert lines == ["E2B backend: E2B cloud at https://api.e2b.app (E2B_API_KEY is set)"]
    assert not first.dies_with_process


def test_api_url_without_key_is_ignored_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain_e2b.local as local

    class FakeRuntime:
        def connection_options(self) -> dict[str, str]:
            return {"api_key": "l", "api_url": "http://127.0.0.1:1", "sandbox_url": "x"}

    monkeypatch.delenv("E2B_API_KEY", raising=False)
    monkeypatch.setenv("E2B_API_URL", "http://127.0.0.1:4000")
    monkeypatch.setattr(local, "default_runtime", FakeRuntime)
    with pytest.warns(UserWarning, match="E2B_API_URL is set but E2B_API_KEY is not"):
        backend = E2BSandboxSession().backend
    assert backend.kind == "embedded"
    assert backend.dies_with_process
    assert backend.api_url == "http://127.0.0.1:1"


def test_local_api_address_without_sandbox_address_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("E2B_SANDBOX_URL", raising=False)
    with pytest.warns(UserWarning, match="no sandbox address"):
        backend = E2BSandboxSession(api_key="k", api_url="http://127.0.0.1:4000").backend
    assert backend.describe().startswith("E2B-compatible server at http://127.0.0.1:4000")


def test_notice_names_a_dead_embedded_runtime_of_another_process(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import langchain_e2b.local as local

    class FakeRuntime:
        def connection_options(self) -> dict[str, str]:
            return {"api_key": "l", "api_url": "http://127.0.0.1:1", "sandbox_url": "x"}

    monkeypatch.delenv("E2B_API_KEY", raising=False)
    monkeypatch.setattr(local, "default_runtime", FakeRuntime)
    session = E2BSandboxSession.connect("sbx-from-another-process")
    result = session.run_code("1")
    session.close()
    assert result.notice == restart_notice(EMBEDDED_ELSEWHERE)
    assert result.notice != RESTART_NOTICE
    assert "another process" in (result.notice or "")


# --- output kept within bounds ----------------------------------------------------------------


def test_capture_keeps_head_and_tail_and_counts_the_middle() -> None:
    capture = OutputCapture(1_000)
    for n in range(10_000):
        capture.add(f"line {n:06d}\n")
    text = capture.text("see /tmp/full")
    assert text.startswith("line 000000\n")
    assert text.endswith("line 009999\n")
    assert capture.omitted == 12 * 10_000 - 1_000
    assert f"[... {capture.omitted} characters of output not kept here; see /tmp/full ...]" in text
    full = "".join(f"line {n:06d}\n" for n in range(10_000))
    assert capture.head() == full[:400]
    assert capture.tail() == full[-600:]


@pytest.mark.parametrize("sizes", [[1], [7, 250], [599, 600, 601], [5_000, 3, 40_000, 17]])
def test_capture_of_any_chunk_sizes_is_the_streams_head_and_tail(sizes: list[int]) -> None:
    # Chunks smaller and larger than the whole budget, in any order, keep the same text.
    capture = OutputCapture(1_000)
    full = ""
    for round_ in range(30):
        for size in sizes:
            chunk = "".join(chr(65 + (round_ + i) % 26) for i in range(size))
            capture.add(chunk)
            full += chunk
            kept = min(len(full), 400) + max(0, min(len(full) - 400, 600))
            assert capture.head() == full[:400]
            assert capture.tail() == full[min(len(full), 400) :][-600:]
            assert capture.omitted == len(full) - kept


def test_streams_empty_the_code_interpreter_sdks_own_copy() -> None:
    # The real SDK parser appends each chunk to its Execution before calling the handler.
    streams = _sdk.Streams(None, 1_000)
    execution = Execution()
    for n in range(100):
        line = json.dumps({"type": "stdout", "text": f"{n}\n", "timestamp": 0})
        parse_output(execution, line, on_stdout=streams.stdout_message)
    assert execution.logs.stdout == []
    assert streams.captures["stdout"].text() == "".join(f"{n}\n" for n in range(100))
    assert isinstance(OutputMessage("x", 0, False).line, str)


def test_long_output_keeps_a_bounded_head_and_tail_and_says_so(
    make_session: MakeSession,
) -> None:
    session = make_session(capture_chars=500)
    result = session.run_code("for i in range(2000): print(i)")
    full = "".join(f"{i}\n" for i in range(2000))
    assert len(result.stdout) < 800
    assert result.stdout.startswith("0\n1\n")
    assert result.stdout.endswith("1998\n1999\n")
    assert result.output_omitted == len(full) - 500
    assert f"{result.output_omitted} characters of output not kept" in result.stdout
    assert "> /tmp/out.txt" in result.stdout
    command = session.run_command("echo " + "x" * 2_000)
    assert command.output_omitted > 0
    assert len(command.stdout) < 800


# --- history ------------------------------------------------------------------------------------


def test_history_is_capped_by_count_and_size() -> None:
    recorder = HistoryRecorder(max_entries=3, max_bytes=1_000)
    for n in range(5):
        recorder.record(CodeResult(code=f"{n}"))
    assert [c.code for c in recorder.cells] == ["2", "3", "4"]
    recorder.record(CodeResult(code="big", stdout="x" * 996))  # 999 bytes: "2" and "3" go
    assert [c.code for c in recorder.cells] == ["4", "big"]
    assert recorder.size == 1_000
    recorder.record(CodeResult(code="huge", stdout="x" * 1_000))  # alone over the limit
    assert recorder.cells == []
    assert recorder.dropped == 7


def test_history_survives_close_and_can_be_shared(make_session: MakeSession) -> None:
    recorder = HistoryRecorder()
    first = make_session(history=recorder)
    first.run_code("a = 1")
    first.run_command("echo hi")
    first.close()
    second = make_session(history=recorder)
    second.run_code("b = 2")
    second.close()
    assert [c.code for c in first.history] == ["a = 1", "b = 2"]
    entries = recorder.entries
    assert isinstance(entries[1], CommandResult)
    assert make_session(history=False).history == []


def test_commands_become_bang_cells_when_asked() -> None:
    pytest.importorskip("nbformat")
    entries: list[CodeResult | CommandResult] = [
        CodeResult(code="x = 1", execution_count=1),
        CommandResult(command="ls -la", stdout="a\n", exit_code=0),
        CommandResult(command="set -e\nmake", stderr="boom\n", exit_code=2),
    ]
    assert [c.source for c in to_notebook(entries).cells] == ["x = 1"]
    cells = to_notebook(entries, include_commands=True).cells
    assert [c.source for c in cells] == ["x = 1", "!ls -la", "%%bash\nset -e\nmake"]
    assert cells[2].outputs[-1].text == "[exit code 2]\n"


# --- a custom node cannot miss the notice ---------------------------------------------------


def test_render_puts_the_notice_first(make_session: MakeSession, backend: FakeBackend) -> None:
    session = make_session()
    session.run_code("x = 1")
    backend.kill(session.sandbox_id or "")
    cell = session.run_code("print('hi')")
    assert cell.render().splitlines()[:2] == [RESTART_NOTICE, "hi"]
    command = session.run_command("echo ok")
    assert command.render() == "ok\nExit code: 0"
