"""A sandbox created with ``lifecycle={"on_timeout": "pause"}`` is paused at its timeout."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from e2b import SandboxState
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="exercises the local runtime only"
)


@pytest.fixture(scope="module")
def options() -> Iterator[dict[str, str]]:
    with LocalRuntime(pool_size=0) as runtime:
        yield runtime.connection_options()


def _state_after(sandbox_id: str, want: SandboxState, options: dict[str, str]) -> SandboxState:
    """Poll the control plane (up to 30 s) until the sandbox is in state ``want``."""
    deadline = time.monotonic() + 30
    state: SandboxState = Sandbox.get_info(sandbox_id, **options).state
    while state != want and time.monotonic() < deadline:
        time.sleep(0.2)
        state = Sandbox.get_info(sandbox_id, **options).state
    return state


def test_timeout_pauses_an_auto_pause_sandbox_and_connect_resumes_it(
    options: dict[str, str],
) -> None:
    sandbox = Sandbox.create(timeout=2, lifecycle={"on_timeout": "pause"}, **options)
    try:
        sandbox.run_code("kept = 'variables survive'")
        assert sandbox.get_info().lifecycle == {"on_timeout": "pause", "auto_resume": False}
        assert _state_after(sandbox.sandbox_id, SandboxState.PAUSED, options) == (
            SandboxState.PAUSED
        )
        time.sleep(1)  # paused past its timeout: still there, not killed
        assert Sandbox.get_info(sandbox.sandbox_id, **options).state == SandboxState.PAUSED

        again = Sandbox.connect(sandbox.sandbox_id, **options)  # no timeout: the default one
        assert again.run_code("kept").text == "variables survive"
        info = again.get_info()
        assert info.state == SandboxState.RUNNING
        assert (info.end_at - info.started_at).total_seconds() > 60
    finally:
        Sandbox.kill(sandbox.sandbox_id, **options)


def test_timeout_still_kills_a_sandbox_without_auto_pause(options: dict[str, str]) -> None:
    sandbox = Sandbox.create(timeout=2, **options)
    deadline = time.monotonic() + 30
    while sandbox.sandbox_id in {s.sandbox_id for s in Sandbox.list(**options).next_items()}:
        assert time.monotonic() < deadline, "the expired sandbox was not killed"
        time.sleep(0.2)


def test_auto_resume_is_refused_with_a_clear_error(options: dict[str, str]) -> None:
    with pytest.raises(Exception, match="autoResume is not available in the local runtime"):
        Sandbox.create(
            timeout=30, lifecycle={"on_timeout": "pause", "auto_resume": True}, **options
        )
