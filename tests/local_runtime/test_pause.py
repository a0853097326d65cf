"""Pause and resume through the real SDK: frozen processes, a stopped clock, state kept."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from e2b import SandboxQuery, SandboxState
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="exercises the local runtime only"
)


@pytest.fixture(scope="module")
def options() -> Iterator[dict[str, str]]:
    with LocalRuntime(pool_size=0) as runtime:
        yield runtime.connection_options()


def _ticks(sandbox: Sandbox) -> int:
    return int(sandbox.files.read("/tmp/ticks").count("\n"))


def test_pause_freezes_and_connect_resumes_with_state_intact(options: dict[str, str]) -> None:
    sandbox = Sandbox.create(timeout=120, metadata={"test": "pause"}, **options)
    try:
        sandbox.run_code("kept = 'variables survive'")
        sandbox.files.write("/home/user/note.txt", "files survive")
        ticker = sandbox.commands.run(
            "while true; do echo t >> /tmp/ticks; sleep 0.05; done", background=True
        )
        deadline = time.monotonic() + 30
        while not sandbox.files.exists("/tmp/ticks") and time.monotonic() < deadline:
            time.sleep(0.05)
        end_before = sandbox.get_info().end_at

        assert sandbox.pause() is True
        assert Sandbox.pause(sandbox.sandbox_id, **options) is False  # already paused
        (listed,) = Sandbox.list(
            query=SandboxQuery(metadata={"test": "pause"}), **options
        ).next_items()
        assert listed.state == SandboxState.PAUSED
        paused = Sandbox.list(
            query=SandboxQuery(metadata={"test": "pause"}, state=[SandboxState.RUNNING]), **options
        ).next_items()
        assert paused == []
        time.sleep(2)  # paused long enough for a running clock or ticker to show

        again = Sandbox.connect(sandbox.sandbox_id, timeout=30, **options)
        ticks_at_resume = _ticks(again)
        assert again.run_code("kept").text == "variables survive"
        assert again.files.read("/home/user/note.txt") == "files survive"
        # The ticker is the same process, running again (no output while paused: see below).
        assert ticker.pid in [p.pid for p in again.commands.list()]
        deadline = time.monotonic() + 30
        while _ticks(again) <= ticks_at_resume and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ticks(again) > ticks_at_resume
        info = again.get_info()
        assert info.state == SandboxState.RUNNING
        # Connect with a 30 s timeout did not shorten it, and the 2 s paused were not counted.
        assert (info.end_at - end_before).total_seconds() >= 1.5
    finally:
        Sandbox.kill(sandbox.sandbox_id, **options)


@pytest.fixture(scope="module")
def unjailed() -> Iterator[dict[str, str]]:
    """Without a jail there is no sandbox cgroup: pausing falls back to stop signals."""
    with LocalRuntime(pool_size=0, isolation=False) as runtime:
        yield runtime.connection_options()


@pytest.mark.parametrize("runtime", ["options", "unjailed"])
def test_nothing_runs_while_paused(runtime: str, request: pytest.FixtureRequest) -> None:
    options: dict[str, str] = request.getfixturevalue(runtime)
    sandbox = Sandbox.create(timeout=120, **options)
    try:
        sandbox.commands.run(
            "while true; do echo t >> /tmp/ticks; sleep 0.05; done", background=True
        )
        deadline = time.monotonic() + 30
        while not sandbox.files.exists("/tmp/ticks") and time.monotonic() < deadline:
            time.sleep(0.05)
        sandbox.pause()
        # Count from the host: the sandbox's files are unreachable while it is paused.
        Sandbox.connect(sandbox.sandbox_id, **options)
        first = _ticks(sandbox)
        sandbox.pause()
        time.sleep(1)
        again = Sandbox.connect(sandbox.sandbox_id, **options)
        # Running, the loop would have ticked ~20 times in that second; a few slip in between
        # the reads and the freeze and thaw.
        assert _ticks(again) - first < 10
    finally:
        Sandbox.kill(sandbox.sandbox_id, **options)


def test_a_paused_sandbox_can_be_killed(options: dict[str, str]) -> None:
    sandbox = Sandbox.create(**options)
    sandbox.pause()
    assert Sandbox.kill(sandbox.sandbox_id, **options) is True
    assert sandbox.sandbox_id not in [s.sandbox_id for s in Sandbox.list(**options).next_items()]
