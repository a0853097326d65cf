"""What the Python kernel loads at start, through the real SDK: small when idle, whole when used."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from e2b_code_interpreter import Sandbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(bool(os.environ.get("E2B_API_KEY")), reason="this runtime's kernels"),
]


def _left_out() -> list[str]:
    """Modules ipykernel's dependencies would import at start that an idle kernel has no use for.

    Older jupyter_client releases (8.0.2, the lowest supported, among them) parse message dates
    with dateutil's free-form parser, newer ones with its ISO parser alone: with the older ones
    the full parser is in use from the start.
    """
    from dateutil.parser import isoparse
    from jupyter_client import jsonutil

    modules = [
        "jupyter_client.manager",
        "jupyter_client.kernelspec",
        "importlib.metadata",
        "colorama",
        "curses",
        "ctypes",
    ]
    if getattr(jsonutil, "_dateutil_parse", None) is isoparse:
        modules.append("dateutil.parser._parser")
    return modules


@pytest.fixture
def sandbox(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    # A fresh sandbox per test: each checks what its kernel has imported so far.
    sbx = Sandbox.create(**e2b_connection)
    try:
        yield sbx
    finally:
        sbx.kill()


def printed(sandbox: Sandbox, code: str) -> Any:
    """Run ``code`` and return the JSON it prints."""
    execution = sandbox.run_code(code)
    assert execution.error is None, execution.error
    return json.loads("".join(execution.logs.stdout))


def test_idle_kernel_leaves_unused_modules_out(sandbox: Sandbox) -> None:
    assert sandbox.run_code("1+1").text == "2"
    loaded = printed(
        sandbox,
        f"import sys, json; print(json.dumps([m for m in {_left_out()!r} if m in sys.modules]))",
    )
    assert loaded == []


def test_user_code_gets_the_whole_jupyter_client(sandbox: Sandbox) -> None:
    import jupyter_client
    from jupyter_client._version import __version__

    got = printed(
        sandbox,
        "import json, jupyter_client\n"
        "names = sorted(dir(jupyter_client))\n"
        "from jupyter_client import AsyncKernelManager\n"
        "print(json.dumps([names, jupyter_client.KernelManager.__module__,"
        " AsyncKernelManager.__name__, jupyter_client.__version__,"
        " hasattr(jupyter_client, 'no_such_name'),"
        " sorted(dir(jupyter_client))]))",
    )
    assert got == [
        sorted(dir(jupyter_client)),
        "jupyter_client.manager",
        "AsyncKernelManager",
        __version__,
        False,
        sorted(dir(jupyter_client)),
    ]


def test_user_code_gets_the_whole_dateutil_parser(sandbox: Sandbox) -> None:
    import dateutil.parser

    got = printed(
        sandbox,
        "import json, dateutil.parser\n"
        "doc, names = dateutil.parser.__doc__, sorted(dir(dateutil.parser))\n"
        "from dateutil.parser import parse\n"
        "print(json.dumps([doc, names, parse('2 Jan 2020 03:04').isoformat(),"
        " dateutil.parser.isoparse('2020-01-02T03:04:05Z').isoformat()]))",
    )
    assert got == [
        dateutil.parser.__doc__,
        sorted(dir(dateutil.parser)),
        "2020-01-02T03:04:00",
        "2020-01-02T03:04:05+00:00",
    ]


def test_user_code_can_import_what_the_start_hid(sandbox: Sandbox) -> None:
    got = printed(
        sandbox,
        "import json, colorama, ctypes, curses, debugpy\n"
        "print(json.dumps([m.__name__ for m in (colorama, ctypes, curses, debugpy)]"
        " + [ctypes.sizeof(ctypes.c_int32)]))",
    )
    assert got == ["colorama", "ctypes", "curses", "debugpy", 4]
