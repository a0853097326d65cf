"""E2BSandboxSession against the hand-written SDK fakes: lifecycle, keep-alive, recreate, events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from e2b_fakes import FakeBackend

from langchain_e2b import _backend, _lifecycle, _sdk
from langchain_e2b import session as session_module
from langchain_e2b.errors import E2BConfigError, E2BSessionClosedError, E2BToolInputError
from langchain_e2b.session import RESTART_NOTICE, E2BSandboxSession, SessionEvent

MakeSession = Callable[..., E2BSandboxSession]


def test_no_sandbox_until_first_call_then_one_reused(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    assert session.sandbox_id is None
    assert backend.created == []
    session.run_code("x = 41")
    assert session.run_code("x + 1").text == "42"
    assert backend.created == [session.sandbox_id]


def test_create_passes_template_metadata_tag_envs_and_connection(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session(template="base", metadata={"owner": "me"}, envs={"A": "1"})
    session.ensure_sandbox()
    box = backend.boxes[session.sandbox_id or ""]
    assert box.template == "base"
    assert box.metadata == {"owner": "me", "langchain_e2b": "1"}
    assert box.envs == {"A": "1"}
    assert backend.options[0] == {"api_key": "test-key", "api_url": "http://fake.invalid"}


def test_sync_and_async_share_one_sandbox(make_session: MakeSession, backend: FakeBackend) -> None:
    session = make_session()
    session.run_code("y = 5")

    async def read_back() -> str | None:
        return (await session.arun_code("y * 2")).text

    assert asyncio.run(read_back()) == "10"
    assert len(backend.created) == 1
    assert backend.connected == [session.sandbox_id]


async def test_ten_parallel_async_calls_create_one_sandbox(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    results = await asyncio.gather(*(session.arun_code(f"{i} * 3") for i in range(10)))
    assert [r.text for r in results] == [str(i * 3) for i in range(10)]
    assert len(backend.created) == 1


def test_parallel_threads_create_one_sandbox(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            session.run_code("1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(backend.created) == 1


def test_keepalive_pushes_expiry_only_when_due(
    make_session: MakeSession, backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = make_session(sandbox_timeout=300)
    for _ in range(20):
        session.run_code("1")
    box = backend.boxes[session.sandbox_id or ""]
    # Create set the lifetime; fast calls do not need another push.
    assert box.timeouts == []
    real = time.monotonic
    later = SimpleNamespace(monotonic=lambda: real() + 200)  # as if 200 s had passed
    monkeypatch.setattr(_sdk, "time", later)
    monkeypatch.setattr(_lifecycle, "time", later)
    session.run_code("1")
    assert box.timeouts == [300]


def test_call_longer_than_sandbox_timeout_keeps_sandbox_alive_for_it(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session(sandbox_timeout=60)
    session.run_code("1", timeout=600)
    box = backend.boxes[session.sandbox_id or ""]
    # Extended for the call, then back to the sandbox timeout so an idle sandbox still expires.
    assert box.timeouts == [630, 60]


def test_recreate_and_tell_after_sandbox_killed_behind_our_back(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    events: list[SessionEvent] = []
    session.add_listener(events.append)
    session.run_code("x = 1")
    first = session.sandbox_id
    backend.kill(first or "")

    result = session.run_code("print('again')")
    assert result.notice == RESTART_NOTICE
    assert result.stdout == "again\n"
    assert session.sandbox_id != first
    assert [e.kind for e in events] == ["created", "recreated"]
    assert events[1].message == RESTART_NOTICE
    # The next call is normal again, and the old state is really gone.
    after = session.run_code("x")
    assert after.notice is None
    assert after.error is not None
    assert after.error["name"] == "NameError"


async def test_async_recreate_and_tell(make_session: MakeSession, backend: FakeBackend) -> None:
    session = make_session()
    await session.arun_code("x = 1")
    backend.kill(session.sandbox_id or "")
    result = await session.arun_code("2 + 2")
    assert result.notice == RESTART_NOTICE
    assert result.text == "4"
    assert len(backend.running()) == 1


def test_recreate_reaches_file_operations_through_collected_notices(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    session.write_file("a.txt", "x")
    backend.kill(session.sandbox_id or "")
    with session_module.collect_notices() as notices, pytest.raises(FileNotFoundError):
        session.read_file("a.txt")
    assert notices == [RESTART_NOTICE]


def test_execution_timeout_is_a_result_not_a_restart(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    result = session.run_code("TIMEOUT", timeout=3)
    assert result.timed_out
    assert result.timeout == 3
    assert result.stdout == "before timeout\n"
    assert result.notice is None
    assert len(backend.created) == 1


def test_commands_exit_codes_timeouts_and_background(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    ok = session.run_command("echo hi")
    assert (ok.stdout, ok.exit_code) == ("hi\n", 0)
    failed = session.run_command("fail 3")
    assert (failed.exit_code, failed.stderr) == (3, "boom\n")
    late = session.run_command("slow", timeout=1)
    assert late.timed_out
    assert late.stdout == "partial\n"
    bg = session.run_command("serve", background=True)
    assert bg.pid == 4242
    assert bg.log_path is not None
    assert bg.log_path.startswith(session_module.OUTPUT_DIR)
    assert (
        backend.boxes[session.sandbox_id or ""]
        .commands[-1]
        .endswith(f"exec >{bg.log_path} 2>&1\nserve")
    )


def test_on_output_gets_chunks_in_order(make_session: MakeSession) -> None:
    session = make_session()
    seen: list[tuple[str, str]] = []
    session.run_code("print(1)\nprint(2)", on_output=lambda s, t: seen.append((s, t)))
    session.run_command("fail 1", on_output=lambda s, t: seen.append((s, t)))
    assert seen == [("stdout", "1\n"), ("stdout", "2\n"), ("stderr", "boom\n")]


async def test_async_on_output_may_be_a_coroutine(make_session: MakeSession) -> None:
    session = make_session()
    seen: list[str] = []

    async def record(stream: str, text: str) -> None:
        await asyncio.sleep(0)
        seen.append(text)

    await session.arun_code("print('a')", on_output=record)
    await session.arun_command("echo b", on_output=record)
    assert seen == ["a\n", "b\n"]


def test_history_keeps_every_cell_in_order(make_session: MakeSession) -> None:
    session = make_session()
    session.run_code("a = 1")
    session.run_code("print(a)")
    session.run_code("1/0")
    history = session.history
    assert [c.code for c in history] == ["a = 1", "print(a)", "1/0"]
    assert [c.execution_count for c in history] == [1, 2, 3]
    assert history[1].stdout == "1\n"
    assert history[2].error is not None
    assert history[2].error["name"] == "ZeroDivisionError"


def test_files_relative_paths_and_listing(make_session: MakeSession) -> None:
    session = make_session(cwd="/home/user")
    assert session.write_file("dir/a.txt", "hello") == "/home/user/dir/a.txt"
    assert session.read_file("/home/user/dir/a.txt") == b"hello"
    assert session.file_info("dir").is_dir
    entries = session.list_files(".", depth=2)
    assert [(e.path, e.is_dir) for e in entries] == [
        ("/home/user/dir", True),
        ("/home/user/dir/a.txt", False),
    ]
    with pytest.raises(FileNotFoundError):
        session.read_file("missing.txt")
    with pytest.raises(E2BToolInputError):
        session.resolve_path("")


def test_close_kills_emits_and_refuses_further_use(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    events: list[str] = []
    session.add_listener(lambda e: events.append(e.kind))
    session.run_code("1")
    session.close()
    session.close()  # idempotent
    assert backend.running() == []
    assert events == ["created", "closed"]
    with pytest.raises(E2BSessionClosedError):
        session.run_code("1")


async def test_async_context_manager_kills(make_session: MakeSession, backend: FakeBackend) -> None:
    async with make_session() as session:
        await session.arun_code("1")
    assert backend.running() == []
    assert session.closed


def test_connect_attaches_without_owning(backend: FakeBackend) -> None:
    owner = E2BSandboxSession(api_key="k", api_url="http://fake.invalid")
    owner.run_code("shared = 'yes'")
    events: list[str] = []
    other = E2BSandboxSession.connect(owner.sandbox_id or "", api_key="k", api_url="http://x")
    other.add_listener(lambda e: events.append(e.kind))
    assert other.run_code("shared").text == "'yes'"
    other.close()
    assert events == ["connected", "closed"]
    assert backend.running() == [owner.sandbox_id]  # attaching does not kill on close
    owner.close()
    assert backend.running() == []


def test_connect_to_gone_sandbox_creates_one_and_says_so(backend: FakeBackend) -> None:
    session = E2BSandboxSession.connect("sbx-missing", api_key="k", api_url="http://fake.invalid")
    result = session.run_code("1")
    assert result.notice == RESTART_NOTICE
    assert session.sandbox_id != "sbx-missing"
    session.close()
    assert backend.running() == []  # the replacement is ours, so close kills it


def test_atexit_hook_kills_sandboxes_of_open_sessions(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    session.run_code("1")
    _backend.kill_live_sandboxes()
    assert backend.running() == []
    assert _backend._LIVE == {}


def test_listener_errors_do_not_break_calls(make_session: MakeSession) -> None:
    session = make_session()

    def broken(event: SessionEvent) -> None:
        raise RuntimeError("listener bug")

    session.add_listener(broken)
    assert session.run_code("3").text == "3"


@pytest.mark.parametrize(
    "options",
    [{"sandbox_timeout": 0}, {"timeout": 0}, {"max_output_chars": 10}, {"cwd": "relative"}],
)
def test_bad_options_raise_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(E2BConfigError):
        E2BSandboxSession(**options)


def test_backend_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_API_KEY", "env-key")
    explicit = E2BSandboxSession(api_key="mine", api_url="http://a", sandbox_url="http://b")
    assert explicit.connection_options() == {
        "api_key": "mine",
        "api_url": "http://a",
        "sandbox_url": "http://b",
    }
    # api_url without api_key falls back to the environment's key
    assert E2BSandboxSession(api_url="http://a").connection_options()["api_key"] == "env-key"
    assert E2BSandboxSession().connection_options() == {"api_key": "env-key"}

    monkeypatch.delenv("E2B_API_KEY")
    import langchain_e2b.local as local

    class FakeRuntime:
        def connection_options(self) -> dict[str, str]:
            return {"api_key": "local", "api_url": "http://127.0.0.1:1", "sandbox_url": "x"}

    monkeypatch.setattr(local, "default_runtime", FakeRuntime)
    assert E2BSandboxSession().connection_options()["api_key"] == "local"

    with pytest.raises(E2BConfigError, match="API key"):
        E2BSandboxSession(api_url="http://a").connection_options()


def test_api_key_is_a_secret(make_session: MakeSession) -> None:
    session = E2BSandboxSession(api_key="very-secret")
    assert "very-secret" not in repr(session)
    assert "very-secret" not in repr(vars(session).get("_api_key"))
