"""Bad input from the model, through the real tools: a clear error or a result, never a crash."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from pydantic import ValidationError

from langchain_e2b import E2BSandboxSession, E2BSandboxToolkit
from langchain_e2b.local import LocalRuntime


@pytest.fixture(scope="module")
def tools(runtime: LocalRuntime) -> Iterator[dict[str, BaseTool]]:
    toolkit = E2BSandboxToolkit(session=E2BSandboxSession(**runtime.connection_options()))
    with toolkit:
        yield {tool.name: tool for tool in toolkit.get_tools()}


def _invoke(tool: BaseTool, **args: Any) -> ToolMessage:
    message = tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


def _text(message: ToolMessage) -> str:
    content = message.content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)


def _ok(tool: BaseTool, **args: Any) -> str:
    message = _invoke(tool, **args)
    assert message.status == "success", message.content
    return _text(message)


def _refused(tool: BaseTool, **args: Any) -> str:
    message = _invoke(tool, **args)
    assert message.status == "error", message.content
    return _text(message)


@pytest.mark.parametrize("code", ["", "   \n\t", "# only a comment"])
def test_empty_code_is_a_result(tools: dict[str, BaseTool], code: str) -> None:
    assert "no output" in _ok(tools["run_code"], code=code)


def test_unknown_language_names_what_is_supported(tools: dict[str, BaseTool]) -> None:
    text = _refused(tools["run_code"], code="1", language="cobol")
    assert "cobol" in text
    assert "python" in text.lower()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("print('a\\x00b')", "a\x00b"),
        ("import os; os.write(1, b'fd \\xff\\xfe bad\\n')", "fd \ufffd\ufffd bad"),
        ("print('lone \\udcff surrogate')", "surrogate"),
        ("import sys; sys.stdout.write('\\x1b[31mred\\x07')", "red"),
        ("raise ValueError('bad \\udcff \\x00')", "ValueError"),
    ],
)
def test_hostile_bytes_in_code_output(tools: dict[str, BaseTool], code: str, expected: str) -> None:
    text = _ok(tools["run_code"], code=code)
    assert expected in text
    text.encode("utf-8")  # whatever the sandbox printed, the model gets valid text


def test_hostile_bytes_in_command_output(tools: dict[str, BaseTool]) -> None:
    text = _ok(tools["run_command"], command="printf 'a\\0b\\377\\376\\n'; printf 'x\\377' >&2")
    assert "a\x00b" in text
    assert "Exit code: 0" in text
    text.encode("utf-8")


def test_gigantic_code_runs(tools: dict[str, BaseTool]) -> None:
    code = "x = '" + "a" * 10_000_000 + "'\nprint(len(x))"
    assert "10000000" in _ok(tools["run_code"], code=code)


def test_gigantic_file_content_is_written(tools: dict[str, BaseTool]) -> None:
    text = _ok(tools["write_file"], path="big.txt", content="b" * 20_000_000)
    assert "20000000 characters" in text
    assert "20000000" in _ok(tools["run_command"], command="wc -c < big.txt")
    # Too big to show: the model is told how to read it in parts instead.
    refused = _refused(tools["read_file"], path="big.txt")
    assert "too large" in refused


def test_gigantic_command_is_a_clear_error(tools: dict[str, BaseTool]) -> None:
    message = _invoke(tools["run_command"], command="echo " + "a" * 1_000_000 + " | wc -c")
    assert message.status == "error" or "1000001" in _text(message)


def test_missing_cwd_is_a_clear_error(tools: dict[str, BaseTool]) -> None:
    assert "/no/such/dir" in _refused(tools["run_command"], command="true", cwd="/no/such/dir")


@pytest.mark.parametrize("timeout", [-1, 0, 1e12, math.inf, math.nan])
@pytest.mark.parametrize("tool_name", ["run_code", "run_command"])
def test_absurd_timeouts_are_refused_before_anything_runs(
    runtime: LocalRuntime, tool_name: str, timeout: float
) -> None:
    session = E2BSandboxSession(**runtime.connection_options())
    with E2BSandboxToolkit(session=session, selected_tools=[tool_name]) as toolkit:
        [tool] = toolkit.get_tools()
        args = {"code": "1"} if tool_name == "run_code" else {"command": "true"}
        with pytest.raises(ValidationError, match="timeout"):
            _invoke(tool, **args, timeout=timeout)
        assert session.sandbox_id is None  # no sandbox was even created


@pytest.mark.parametrize(
    "spec",
    [
        "requests; touch /tmp/pwned",
        "requests && touch /tmp/pwned",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "requests\ntouch /tmp/pwned",
        "--index-url=http://127.0.0.1:9/simple",
        "--index-url",
        "-e .",
        "-r /etc/passwd",
        "git+https://127.0.0.1/evil.git",
        "https://127.0.0.1/evil.whl",
        "evil @ https://127.0.0.1/evil.whl",
        "./local-dir",
        "/tmp/evil.whl",
        "requests>=1|touch",
        "",
    ],
)
def test_hostile_package_specs_never_reach_a_shell(runtime: LocalRuntime, spec: str) -> None:
    session = E2BSandboxSession(**runtime.connection_options())
    with E2BSandboxToolkit(session=session, selected_tools=["install_packages"]) as toolkit:
        [tool] = toolkit.get_tools()
        text = _refused(tool, packages=["pandas", spec])
        assert "not a valid pip package spec" in text
        # Refused before any sandbox existed, so no shell anywhere saw the spec.
        assert session.sandbox_id is None


@pytest.mark.parametrize("spec", ["lodash; rm -rf ~", "--registry=http://127.0.0.1:9", "x@`id`"])
def test_hostile_npm_specs_never_reach_a_shell(runtime: LocalRuntime, spec: str) -> None:
    session = E2BSandboxSession(**runtime.connection_options())
    with E2BSandboxToolkit(session=session, selected_tools=["install_packages"]) as toolkit:
        [tool] = toolkit.get_tools()
        assert "not a valid npm package spec" in _refused(tool, packages=[spec], manager="npm")
        assert session.sandbox_id is None


@pytest.mark.parametrize(
    ("tool_name", "args", "expected"),
    [
        ("read_file", {"path": "../../../etc/shadow"}, "permission denied"),
        ("read_file", {"path": "a\x00b"}, "NUL"),
        ("read_file", {"path": "/home"}, "is a directory"),
        ("read_file", {"path": ""}, "must not be empty"),
        ("read_file", {"path": "/no/such/file"}, "No such file"),
        ("write_file", {"path": "/home/user", "content": "x"}, "is a directory"),
        ("write_file", {"path": "../../usr/evil", "content": "x"}, "/usr/evil"),
        ("write_file", {"path": "a\x00b", "content": "x"}, "NUL"),
        ("list_files", {"path": "/etc/hostname"}, "not a directory"),
        ("list_files", {"path": "/no/such/dir"}, "No such file"),
        ("edit_file", {"path": "/home", "old_text": "a", "new_text": "b"}, "is a directory"),
        (
            "edit_file",
            {"path": "../../../etc/passwd", "old_text": "root", "new_text": "x"},
            "/etc/passwd",
        ),
        ("run_command", {"command": ""}, "must not be empty"),
    ],
)
def test_bad_paths_are_clear_errors(
    tools: dict[str, BaseTool], tool_name: str, args: dict[str, Any], expected: str
) -> None:
    text = _refused(tools[tool_name], **args)
    assert expected in text
    # Nothing escaped the sandbox's own filesystem.
    assert "root:x:0:0" in _ok(tools["run_command"], command="cat /etc/passwd")


def test_binary_file_is_refused_as_text(tools: dict[str, BaseTool]) -> None:
    _ok(tools["run_command"], command="printf 'ab\\377\\376\\0cd' > bin.dat")
    assert "binary" in _refused(tools["read_file"], path="bin.dat")
    assert "binary" in _refused(tools["edit_file"], path="bin.dat", old_text="ab", new_text="x")


def test_edits_with_missing_or_ambiguous_text(tools: dict[str, BaseTool]) -> None:
    _ok(tools["write_file"], path="e.txt", content="one two one\n")
    assert "not found" in _refused(tools["edit_file"], path="e.txt", old_text="three", new_text="x")
    text = _refused(tools["edit_file"], path="e.txt", old_text="one", new_text="x")
    assert "2 times" in text
    assert "must not be empty" in _refused(
        tools["edit_file"], path="e.txt", old_text="", new_text="x"
    )
    # The file is untouched by the refused edits, and a precise one still works.
    assert _ok(tools["read_file"], path="e.txt") == "one two one\n"
    _ok(tools["edit_file"], path="e.txt", old_text="one two", new_text="ONE two")
    assert _ok(tools["read_file"], path="e.txt") == "ONE two one\n"
