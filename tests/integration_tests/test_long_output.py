"""Output longer than the caller keeps: the model is told what was kept and what was not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from langchain_e2b import E2BSandboxSession, E2BShellTool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_output_the_caller_did_not_keep_is_not_called_saved(
    make_session: Callable[..., E2BSandboxSession],
) -> None:
    session = make_session(capture_chars=4_000)
    tool = E2BShellTool(session=session, max_output_chars=2_000)
    answer = tool.invoke(
        {
            "type": "tool_call",
            "id": "call-1",
            "name": "run_command",
            "args": {"command": "seq 1 20000"},
        }
    )
    text = str(answer.content)
    assert text.startswith("1\n2\n")
    assert "20000" in text
    assert "truncated" in text
    assert "full output is saved" not in text
    assert "characters in the middle were not kept" in text
    path = answer.artifact["full_output_path"]
    # What was saved is exactly what the caller kept: head, marker and tail.
    saved = session.read_file(path).decode()
    assert saved.startswith("1\n2\n")
    assert "\n20000\nExit code: 0" in saved
    assert "not kept" in saved
