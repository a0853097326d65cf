"""What the tools tell the model in the awkward cases, on the real SDK against the real runtime.

Offline installs, packages that are already there, a deliberate kernel restart, writes outside
the writable areas, and the presentation options that belong to the tools and the toolkit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from langchain_e2b import (
    E2BCodeInterpreterTool,
    E2BInstallPackagesTool,
    E2BSandboxSession,
    E2BSandboxToolkit,
    E2BWriteFileTool,
)
from langchain_e2b.tools import KERNEL_RESTARTED

MakeSession = Callable[..., E2BSandboxSession]

# The local runtime gives sandboxes no network unless started with allow_internet=True; the
# E2B cloud gives them internet, so the offline tests only make sense locally.
local_only = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="E2B cloud sandboxes have internet access"
)


def call(tool: Any, **args: Any) -> ToolMessage:
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


async def acall(tool: Any, **args: Any) -> ToolMessage:
    message = await tool.ainvoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


@local_only
@pytest.mark.parametrize(("manager", "package"), [("pip", "tinydb"), ("npm", "left-pad")])
def test_offline_install_fails_fast_and_says_why(
    make_session: MakeSession, manager: str, package: str
) -> None:
    tool = E2BInstallPackagesTool(session=make_session())
    call(E2BCodeInterpreterTool(session=tool.session), code="1")  # the sandbox is up
    started = time.monotonic()
    message = call(tool, packages=[package], manager=manager)
    took = time.monotonic() - started
    text = str(message.content)
    assert "no internet access" in text, text
    assert "--allow-internet" in text
    assert "No matching distribution" not in text
    assert f"Installed: {package}" not in text
    # Before, pip retried for ~9 s and npm for ~70 s; now nothing reaches for the network.
    assert took < 6, took


@local_only
def test_already_installed_package_is_not_reported_as_installed(make_session: MakeSession) -> None:
    message = call(E2BInstallPackagesTool(session=make_session()), packages=["numpy"])
    text = str(message.content)
    assert "Already installed: numpy." in text, text
    assert "Installed: numpy" not in text
    assert "\x1b[" not in text


def test_restart_argument_clears_the_kernel_and_says_so(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    call(tool, code="x = 42")
    message = call(tool, code="print('x' in globals())", restart=True)
    text = str(message.content)
    assert text.startswith(KERNEL_RESTARTED), text
    assert text.rstrip().endswith("False")
    assert message.artifact["notice"] == KERNEL_RESTARTED
    assert str(call(tool, code="'x' in globals()").content) == "Out[2]: False"


async def test_restart_argument_async(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    await acall(tool, code="y = 1")
    message = await acall(tool, code="print('y' in globals())", restart=True)
    assert str(message.content).startswith(KERNEL_RESTARTED)
    assert str(message.content).rstrip().endswith("False")


@pytest.mark.parametrize("path", ["/usr/local/notes.txt", "/etc/notes.txt"])
def test_writing_outside_the_writable_areas_says_where_writing_is_allowed(
    make_session: MakeSession, path: str
) -> None:
    message = call(E2BWriteFileTool(session=make_session()), path=path, content="hi")
    text = str(message.content)
    assert message.status == "error"
    assert "permission denied" in text.lower(), text
    assert "/home/user" in text
    assert "/tmp" in text


def test_presentation_options_belong_to_the_tools(make_session: MakeSession) -> None:
    session = make_session()
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
    long_output = "for i in range(1000):\n    print(f'row {i}')"
    toolkit = E2BSandboxToolkit(session=session, max_output_chars=500, include_images=False)
    run_code = next(t for t in toolkit.get_tools() if t.name == "run_code")

    truncated = call(run_code, code=long_output)
    assert len(str(truncated.content)) < 900
    assert truncated.artifact["truncated"] is True
    no_image = call(run_code, code=plot)
    assert isinstance(no_image.content, str), no_image.content

    # The same session through a tool with the defaults: full text, image blocks.
    default_tool = E2BCodeInterpreterTool(session=session)
    assert call(default_tool, code=long_output).artifact["truncated"] is False
    assert isinstance(call(default_tool, code=plot).content, list)
