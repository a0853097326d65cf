"""What our backend adds: timeouts that stop the command, bounded output, offload, the import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
from e2b import Sandbox

from langchain_e2b import E2BConfigError, E2BSandboxSession
from langchain_e2b.deepagents import TIMEOUT_EXIT_CODE, E2BCodeMiddleware, E2BSandbox


def test_timeout_reports_124_and_stops_the_command(make_backend: Callable[..., E2BSandbox]) -> None:
    backend = make_backend()
    result = backend.execute("echo started; sleep 30; echo finished", timeout=1)
    assert result.exit_code == TIMEOUT_EXIT_CODE
    assert "started" in result.output
    assert "finished" not in result.output
    assert "timed out after 1 seconds" in result.output
    # The command really stopped: no sleep is left in the sandbox (the kill may take a moment
    # to land, so look a few times).
    for _ in range(20):
        survivors = backend.execute("pgrep -x sleep | wc -l").output.strip()
        if survivors == "0":
            break
        time.sleep(0.25)
    assert survivors == "0"


async def test_long_output_is_truncated_and_saved_in_the_sandbox(
    make_backend: Callable[..., E2BSandbox],
) -> None:
    backend = make_backend(max_output_chars=2000)
    result = await backend.aexecute("seq 1 20000")
    assert result.truncated is True
    assert result.exit_code == 0
    assert len(result.output) < 2500
    assert result.output.startswith("1\n")
    assert result.output.rstrip().endswith("20000")
    saved = result.output.split("the full output is saved in the sandbox at ")[1].split(" ")[0]
    assert backend.execute(f"wc -l < {saved}").output.strip() == "20000"


def test_offloaded_output_points_at_a_readable_file(
    make_backend: Callable[..., E2BSandbox],
) -> None:
    backend = make_backend()
    offload = backend.execute_with_offload(
        "seq 1 50000; exit 3", "/large_tool_results/call_1", max_inline_bytes=4000
    )
    response = offload.response
    assert response.exit_code == 3
    assert response.truncated is True
    assert len(response.output) < 4500
    saved = response.output.split("the full output is saved in the sandbox at ")[1].split(" ")[0]
    page = backend.read(saved, offset=49_999, limit=1)
    assert page.file_data is not None
    assert page.file_data["content"].strip() == "50000"


def test_small_output_is_not_offloaded(make_backend: Callable[..., E2BSandbox]) -> None:
    backend = make_backend()
    offload = backend.execute_with_offload(
        "echo small", "/large_tool_results/call_2", max_inline_bytes=4000
    )
    assert offload.response.output == "small\n"
    assert offload.response.truncated is False


def test_package_imports_without_deepagents() -> None:
    code = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "deepagents" or name.startswith("deepagents."):
                    raise ImportError("deepagents is not installed")
                return None

        sys.meta_path.insert(0, Block())
        import langchain_e2b
        assert "AsyncE2BSandbox" in langchain_e2b.__all__
        try:
            langchain_e2b.E2BSandbox
        except ImportError as exc:
            assert "langchain-e2b[deepagents]" in str(exc), exc
        else:
            raise AssertionError("E2BSandbox imported without deepagents")
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_bad_construction_says_what_to_do() -> None:
    with pytest.raises(E2BConfigError, match="E2B SDK sandbox"):
        E2BSandbox(sandbox="sbx-123")
    with pytest.raises(E2BConfigError, match="not both"):
        E2BSandbox(sandbox="sbx-123", session=E2BSandboxSession())
    with pytest.raises(E2BConfigError, match="pass them to the session"):
        E2BSandbox(session=E2BSandboxSession(), template="base")
    with pytest.raises(E2BConfigError, match="E2BSandbox or AsyncE2BSandbox"):
        E2BCodeMiddleware(object())  # type: ignore[arg-type]


def test_a_killed_sandbox_is_replaced_and_the_model_told(
    make_backend: Callable[..., E2BSandbox], e2b_connection: dict[str, Any]
) -> None:
    backend = make_backend()
    first = backend.id
    assert Sandbox.kill(first, **e2b_connection)
    result = backend.execute("echo after")
    assert result.output.startswith("Note: the sandbox had stopped")
    assert result.output.endswith("after\n")
    assert result.exit_code == 0
    assert backend.id != first
