"""One session driven from threads and event loops at once, on the real SDK and runtime."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from langchain_e2b import E2BSandboxSession
from tests.integration_tests.conftest import running_with

MakeSession = Callable[..., E2BSandboxSession]


def test_threads_and_an_event_loop_share_one_sandbox_from_the_first_call(
    make_session: MakeSession, e2b_connection: dict[str, Any]
) -> None:
    session = make_session()
    start = threading.Barrier(4)  # three threads and the loop start their first calls together
    errors: list[BaseException] = []
    seen: dict[str, str] = {}

    def thread_work(n: int) -> None:
        try:
            start.wait(timeout=30)
            session.write_file(f"t{n}.txt", f"thread {n}")
            session.run_code(f"t{n} = {n}")
            seen[f"t{n}"] = session.read_file(f"t{n}.txt").decode()
            seen[f"cmd{n}"] = session.run_command(f"cat t{n}.txt").stdout
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    async def loop_work() -> list[Any]:
        await asyncio.to_thread(start.wait, 30)
        return list(
            await asyncio.gather(
                session.arun_code("a = 'loop'"),
                session.awrite_file("a.txt", "loop"),
                session.arun_command("echo loop"),
                session.alist_files("."),
            )
        )

    threads = [threading.Thread(target=thread_work, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    code, path, command, _ = asyncio.run(loop_work())
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert all(r.notice is None for r in (code, command))
    assert path == "/home/user/a.txt"
    assert command.stdout == "loop\n"
    assert seen == {f"t{n}": f"thread {n}" for n in range(3)} | {
        f"cmd{n}": f"thread {n}" for n in range(3)
    }
    # Every variable landed in the same kernel, and only one sandbox exists.
    assert session.run_code("(a, t0 + t1 + t2)").text == "('loop', 3)"
    assert running_with(e2b_connection, session.metadata) == [session.sandbox_id]
