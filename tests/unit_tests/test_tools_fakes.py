"""The tools over a fake-backed session: content, artifacts, error tiers, callbacks, providers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import e2b_fakes
import pytest
from e2b import InvalidArgumentException, NotEnoughSpaceException, SandboxException
from e2b_fakes import PNG_1PX, FakeBackend
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig

from langchain_e2b import (
    E2BCodeInterpreterTool,
    E2BEditFileTool,
    E2BInstallPackagesTool,
    E2BListFilesTool,
    E2BReadFileTool,
    E2BSandboxSession,
    E2BSandboxToolkit,
    E2BShellTool,
    E2BToolInputError,
    E2BWriteFileTool,
)
from langchain_e2b.session import RESTART_NOTICE
from langchain_e2b.tools import MAX_COMMAND_BYTES, install_command, validate_package_spec

MakeSession = Callable[..., E2BSandboxSession]


def call(tool: Any, **args: Any) -> ToolMessage:
    message = tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


async def acall(tool: Any, **args: Any) -> ToolMessage:
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}
    )
    assert isinstance(message, ToolMessage)
    return message


def test_model_visible_names() -> None:
    names = [t.name for t in E2BSandboxToolkit().get_tools()]
    assert names == [
        "run_code",
        "run_command",
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
        "install_packages",
        "job_status",
        "job_output",
        "job_stop",
    ]


def test_run_code_content_and_artifact(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    call(tool, code="x = 20")
    message = call(tool, code="print('hi')\nx + 22")
    assert message.content == "hi\nOut[2]: 42"
    assert message.status == "success"
    artifact = message.artifact
    assert artifact["kind"] == "code"
    assert artifact["execution_count"] == 2
    assert artifact["sandbox_id"] == tool.session.sandbox_id  # type: ignore[union-attr]
    assert artifact["truncated"] is False
    json.dumps(artifact)


def test_string_input_is_the_code(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    assert tool.invoke("6 * 7") == "Out[1]: 42"


def test_user_code_error_is_a_result_not_a_tool_error(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    message = call(tool, code="{}['k']")
    assert message.status == "success"
    assert "KeyError" in str(message.content)
    assert message.artifact["error"]["name"] == "KeyError"


def test_images_become_image_blocks(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    message = call(tool, code="IMAGE = 1")
    assert isinstance(message.content, list)
    assert message.content[0]["type"] == "text"  # type: ignore[index]
    assert message.content[1] == {"type": "image", "base64": PNG_1PX, "mime_type": "image/png"}
    assert message.artifact["results"][0]["data"]["image/png"] == PNG_1PX

    plain = E2BCodeInterpreterTool(session=make_session(include_images=False))
    assert isinstance(call(plain, code="IMAGE = 1").content, str)


def test_long_output_is_truncated_and_saved_in_the_sandbox(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session(max_output_chars=1_000)
    tool = E2BCodeInterpreterTool(session=session)
    message = call(tool, code="for i in range(2000): print('row', i)")
    text = str(message.content)
    assert len(text) < 1_300
    assert text.startswith("row 0\n")
    assert text.rstrip().endswith("row 1999")
    path = message.artifact["full_output_path"]
    assert message.artifact["truncated"] is True
    assert path in text
    saved = backend.boxes[session.sandbox_id or ""].files[path].decode()
    assert saved.count("\n") == 1999  # every row, nothing cut
    assert "row 1000" in saved


def test_output_still_reaches_the_model_when_saving_it_fails(
    make_session: MakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = make_session(max_output_chars=1_000)

    def disk_full(text: str) -> str:
        raise SandboxException("No space left on device")

    monkeypatch.setattr(session, "save_output", disk_full)
    message = call(E2BCodeInterpreterTool(session=session), code="for i in range(2000): print(i)")
    assert message.status == "success"
    assert "the full output could not be saved" in str(message.content)
    assert message.artifact["truncated"] is True
    assert message.artifact["full_output_path"] is None


async def test_full_disk_while_saving_keeps_the_truncated_output(
    make_session: MakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = make_session(max_output_chars=1_000)

    async def disk_full(text: str) -> str:
        raise NotEnoughSpaceException("not enough disk space to write the output")

    monkeypatch.setattr(session, "asave_output", disk_full)
    message = await acall(E2BShellTool(session=session), command="echo " + "x" * 3_000)
    text = str(message.content)
    assert message.status == "success"
    assert len(text) < 1_300
    assert "truncated" in text
    assert "the full output could not be saved" in text
    assert message.artifact["full_output_path"] is None


def test_timeout_text(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    text = str(call(tool, code="TIMEOUT", timeout=2).content)
    assert text.splitlines() == [
        "before timeout",
        "Execution timed out after 2 seconds and was interrupted; "
        "variables set before the interruption are kept.",
    ]


def test_unknown_language_is_a_model_fixable_error(make_session: MakeSession) -> None:
    tool = E2BCodeInterpreterTool(session=make_session())
    message = call(tool, code="1", language="cobol")
    assert message.status == "error"
    assert "cobol" in str(message.content)


def test_restart_notice_comes_first(make_session: MakeSession, backend: FakeBackend) -> None:
    session = make_session()
    code, read = E2BCodeInterpreterTool(session=session), E2BReadFileTool(session=session)
    call(code, code="x = 1")
    backend.kill(session.sandbox_id or "")
    assert str(call(code, code="2").content).startswith(RESTART_NOTICE)

    session.write_file("f.txt", "data")
    backend.kill(session.sandbox_id or "")
    # The file is gone with the old sandbox: the model is told why in the same message.
    message = call(read, path="f.txt")
    assert message.status == "error"
    assert str(message.content).startswith(RESTART_NOTICE + "\nNo such file")
    session.write_file("g.txt", "data")
    backend.kill(session.sandbox_id or "")
    assert str(
        call(E2BWriteFileTool(session=session), path="h.txt", content="z").content
    ).startswith(RESTART_NOTICE)


def test_shell_tool(make_session: MakeSession) -> None:
    tool = E2BShellTool(session=make_session())
    assert call(tool, command="echo hello").content == "hello\nExit code: 0"
    failed = call(tool, command="fail 2")
    assert failed.status == "success"
    assert str(failed.content).endswith("Exit code: 2")
    assert failed.artifact["exit_code"] == 2
    bg = call(tool, command="server", background=True)
    assert "Started job-1 in the background (pid 4242)" in str(bg.content)
    assert bg.artifact["job_id"] == "job-1"
    assert bg.artifact["pid"] == 4242
    assert call(tool, command="   ").status == "error"


def test_overlong_command_is_refused_before_anything_runs(make_session: MakeSession) -> None:
    session = make_session()
    message = call(E2BShellTool(session=session), command="echo " + "a" * MAX_COMMAND_BYTES)
    assert message.status == "error"
    assert "write_file" in str(message.content)
    assert session.sandbox_id is None


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        ("cwd '/no/such/dir' is not an existing directory", ["/no/such/dir", "mkdir -p"]),
        ("cannot start /bin/bash: [Errno 7] Argument list too long", ["too long", "to a file"]),
        ("user 'nobody' does not exist", ["could not start the command", "nobody"]),
    ],
)
async def test_sdk_refusals_to_start_a_command_are_model_fixable(
    make_session: MakeSession, monkeypatch: pytest.MonkeyPatch, refusal: str, expected: list[str]
) -> None:
    # The fake SDK refuses to start the command; the session turns that into our error.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise InvalidArgumentException(refusal)

    monkeypatch.setattr(e2b_fakes, "run_command", refuse)
    tool = E2BShellTool(session=make_session())
    for message in (
        call(tool, command="true", cwd="/no/such/dir"),
        await acall(tool, command="true", cwd="/no/such/dir"),
    ):
        assert message.status == "error"
        for fragment in expected:
            assert fragment in str(message.content)


def test_file_tools_roundtrip_and_ranges(make_session: MakeSession) -> None:
    session = make_session()
    write, read = E2BWriteFileTool(session=session), E2BReadFileTool(session=session)
    lines = "".join(f"l{i}\n" for i in range(1, 11))
    assert call(write, path="src/a.txt", content=lines).content == (
        "Wrote 31 characters (10 lines) to /home/user/src/a.txt."
    )
    assert call(read, path="src/a.txt").content == lines
    ranged = call(read, path="src/a.txt", start_line=3, end_line=4)
    assert ranged.content == "[/home/user/src/a.txt: lines 3-4 of 10]\nl3\nl4\n"
    assert ranged.artifact["total_lines"] == 10
    assert call(read, path="src/a.txt", start_line=50).status == "error"
    assert "directory" in str(call(read, path="src").content)

    listing = call(E2BListFilesTool(session=session), path=".", depth=2)
    assert listing.content == "/home/user:\nsrc/\nsrc/a.txt  (31 bytes)"


def test_read_refuses_binary_with_a_useful_message(make_session: MakeSession) -> None:
    session = make_session()
    session.write_file("blob.bin", b"\x89PNG\x00\x01\x02")
    message = call(E2BReadFileTool(session=session), path="blob.bin")
    assert message.status == "error"
    assert "binary" in str(message.content)
    assert "run_code" in str(message.content)


def test_missing_file_is_a_tool_error(make_session: MakeSession) -> None:
    message = call(E2BReadFileTool(session=make_session()), path="nope.txt")
    assert message.status == "error"
    assert "/home/user/nope.txt" in str(message.content)
    assert "list_files" in str(message.content)


def test_nul_in_a_path_is_a_tool_error(make_session: MakeSession, backend: FakeBackend) -> None:
    message = call(E2BWriteFileTool(session=make_session()), path="a\0b.txt", content="x")
    assert message.status == "error"
    assert "NUL" in str(message.content)
    assert backend.created == []  # refused before any sandbox was needed


def test_edit_file_exact_unique_and_replace_all(make_session: MakeSession) -> None:
    session = make_session()
    edit = E2BEditFileTool(session=session)
    session.write_file("m.py", "a = 1\nb = 1\nc = 2\n")
    missing = call(edit, path="m.py", old_text="z = 9", new_text="")
    assert missing.status == "error"
    assert "not found" in str(missing.content)
    twice = call(edit, path="m.py", old_text="= 1", new_text="= 5")
    assert twice.status == "error"
    assert "2 times" in str(twice.content)
    assert session.read_file("m.py") == b"a = 1\nb = 1\nc = 2\n"  # untouched on error

    ok = call(edit, path="m.py", old_text="c = 2", new_text="c = 3")
    assert ok.content == "Replaced 1 occurrence in /home/user/m.py (first at line 3)."
    every = call(edit, path="m.py", old_text="= 1", new_text="= 7", replace_all=True)
    assert every.artifact["replacements"] == 2
    assert session.read_file("m.py") == b"a = 7\nb = 7\nc = 3\n"


@pytest.mark.parametrize(
    "spec",
    ["pandas", "numpy>=1.26", "scikit-learn[all]==1.4.2", "requests >= 2, < 3", "zope.interface"],
)
def test_valid_pip_specs(spec: str) -> None:
    assert validate_package_spec(spec, "pip") == spec.strip()


@pytest.mark.parametrize(
    "spec",
    [
        "numpy; rm -rf /",
        "--index-url=http://evil",
        "git+https://github.com/x/y",
        "./local_dir",
        "pkg @ https://x/y.whl",
        "$(touch /tmp/p)",
        "a`id`",
        "",
        "numpy\nls",
    ],
)
def test_invalid_pip_specs_never_reach_the_shell(spec: str) -> None:
    with pytest.raises(E2BToolInputError, match="not a valid pip package spec"):
        install_command([spec], "pip")


def test_npm_specs() -> None:
    assert validate_package_spec("@scope/pkg@^1.2.0", "npm") == "@scope/pkg@^1.2.0"
    with pytest.raises(E2BToolInputError):
        validate_package_spec("lodash && curl x", "npm")


def test_install_packages_runs_one_quoted_command(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    tool = E2BInstallPackagesTool(session=session)
    message = call(tool, packages=["pandas", "numpy>=1.26"])
    assert message.status == "success"
    assert "Installed: pandas, numpy>=1.26." in str(message.content)
    command = backend.boxes[session.sandbox_id or ""].commands[-1]
    assert command.endswith("--retries 1 pandas 'numpy>=1.26'")
    bad = call(tool, packages=["ok", "bad;rm"])
    assert bad.status == "error"
    assert backend.boxes[session.sandbox_id or ""].commands[-1] == command  # nothing ran


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.texts: list[str] = []
        self.tool_run: UUID | None = None
        self.event_runs: set[UUID] = set()

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID, **kw: Any) -> None:
        self.tool_run = run_id

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kw: Any) -> None:
        self.events.append((name, data))
        self.event_runs.add(run_id)

    def on_text(self, text: str, **kw: Any) -> None:
        self.texts.append(text)


class AsyncRecorder(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.texts: list[str] = []

    async def on_custom_event(self, name: str, data: Any, **kw: Any) -> None:
        self.events.append((name, data))

    async def on_text(self, text: str, **kw: Any) -> None:
        self.texts.append(text)


def test_live_output_and_lifecycle_reach_callbacks_in_order(make_session: MakeSession) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    recorder = Recorder()
    message = tool.invoke(
        {
            "type": "tool_call",
            "id": "c",
            "name": "run_code",
            "args": {"code": "print(1)\nprint(2)"},
        },
        config={"callbacks": [recorder]},
    )
    sandbox_id = session.sandbox_id
    assert recorder.events == [
        (
            "e2b_sandbox",
            {
                "event": "created",
                "sandbox_id": sandbox_id,
                "message": f"Created sandbox {sandbox_id} (code-interpreter-v1).",
            },
        ),
        ("e2b_output", {"stream": "stdout", "text": "1\n", "sandbox_id": sandbox_id}),
        ("e2b_output", {"stream": "stdout", "text": "2\n", "sandbox_id": sandbox_id}),
    ]
    assert recorder.texts == ["1\n", "2\n"]
    assert recorder.event_runs == {recorder.tool_run}  # attached to the tool run itself
    assert message.content == "1\n2"  # streaming does not change the final message


async def test_async_live_output_reaches_async_callbacks(make_session: MakeSession) -> None:
    session = make_session()
    tool = E2BShellTool(session=session)
    recorder = AsyncRecorder()
    await tool.ainvoke({"command": "echo streamed"}, config={"callbacks": [recorder]})
    names = [name for name, _ in recorder.events]
    assert names == ["e2b_sandbox", "e2b_output"]
    assert recorder.events[1][1] == {
        "stream": "stdout",
        "text": "streamed\n",
        "sandbox_id": session.sandbox_id,
    }
    assert recorder.texts == ["streamed\n"]


def test_lifecycle_event_goes_only_to_the_call_that_caused_it(make_session: MakeSession) -> None:
    session = make_session()
    tool = E2BCodeInterpreterTool(session=session)
    first, second = Recorder(), Recorder()
    tool.invoke({"code": "1"}, config={"callbacks": [first]})
    tool.invoke({"code": "2"}, config={"callbacks": [second]})
    assert [n for n, _ in first.events] == ["e2b_sandbox"]
    assert second.events == []


class ThreadProvider:
    """A provider that picks a session per ``thread_id``, as a thread-scoped provider would."""

    def __init__(self, factory: MakeSession) -> None:
        self.factory = factory
        self.sessions: dict[str, E2BSandboxSession] = {}

    def get(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        thread = (config or {}).get("configurable", {}).get("thread_id", "default")
        if thread not in self.sessions:
            self.sessions[thread] = self.factory()
        return self.sessions[thread]

    async def aget(self, config: RunnableConfig | None = None) -> E2BSandboxSession:
        return self.get(config)


async def test_session_provider_resolves_per_call(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    provider = ThreadProvider(make_session)
    tool = E2BCodeInterpreterTool(session=provider)
    tool.invoke({"code": "v = 'a'"}, config={"configurable": {"thread_id": "a"}})
    await tool.ainvoke({"code": "v = 'b'"}, config={"configurable": {"thread_id": "b"}})
    a = tool.invoke({"code": "v"}, config={"configurable": {"thread_id": "a"}})
    b = await tool.ainvoke({"code": "v"}, config={"configurable": {"thread_id": "b"}})
    assert (a, b) == ("Out[2]: 'a'", "Out[2]: 'b'")
    assert len(backend.created) == 2


def test_toolkit_shares_and_closes_its_session(
    make_session: MakeSession, backend: FakeBackend
) -> None:
    session = make_session()
    with E2BSandboxToolkit(session=session) as toolkit:
        tools = {t.name: t for t in toolkit.get_tools()}
        assert all(t.session is session for t in tools.values())  # type: ignore[attr-defined]
        call(tools["write_file"], path="x.py", content="print('from file')")
        assert call(tools["run_command"], command="echo shared").content == "shared\nExit code: 0"
        assert len(backend.created) == 1
    assert session.closed
    assert backend.running() == []


def test_toolkit_selected_tools() -> None:
    toolkit = E2BSandboxToolkit(selected_tools=["read_file", "run_code"])
    assert [t.name for t in toolkit.get_tools()] == ["read_file", "run_code"]
    with pytest.raises(ValueError, match="Unknown tool"):
        E2BSandboxToolkit(selected_tools=["rm_rf"])
