"""A cell's timeout is wall time, and the model learns whether the kernel kept its state."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from langchain_e2b import E2BCodeInterpreterTool, E2BSandboxSession

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LOOP = "import time\nwhile True:\n    time.sleep(0.05)"
STUBBORN = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.05)\n"
    "    except KeyboardInterrupt:\n"
    "        pass"
)


@pytest.mark.parametrize("limit", [2, 4])
def test_timeout_is_wall_time_from_call_to_answer(
    make_session: Callable[..., E2BSandboxSession], limit: int
) -> None:
    session = make_session()
    session.run_code("x = 41")
    started = time.monotonic()
    result = session.run_code(LOOP, timeout=limit)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert elapsed < 1.5 * limit, f"timeout={limit} took {elapsed:.1f} s"
    assert not result.kernel_restarted
    # An interrupted cell keeps the kernel's state, as the answer says, and the probe that
    # checked it leaves the numbering alone: cells 1 and 2 ran, this is cell 3.
    after = session.run_code("x + 1")
    assert after.text == "42"
    assert after.execution_count == 3


async def test_async_timeout_is_wall_time(make_session: Callable[..., E2BSandboxSession]) -> None:
    session = make_session()
    started = time.monotonic()
    result = await session.arun_code(LOOP, timeout=2)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert elapsed < 3.0, f"timeout=2 took {elapsed:.1f} s"


def test_code_that_ignores_the_interrupt_is_reported_as_state_lost(
    make_session: Callable[..., E2BSandboxSession],
) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    session.run_code("kept = 'before'")
    answer = tool.invoke(
        {
            "type": "tool_call",
            "id": "call-1",
            "name": "run_code",
            "args": {"code": STUBBORN, "timeout": 2},
        }
    )
    text = answer.content if isinstance(answer.content, str) else str(answer.content)
    assert "timed out after 2 seconds" in text
    assert "kernel was restarted" in text
    assert "kept" not in text.split("timed out", 1)[1]
    # The next cell runs at once on the fresh kernel, and the old variable is really gone.
    after = session.run_code("'kept' in globals()")
    assert after.text == "False"
