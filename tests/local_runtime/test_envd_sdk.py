"""envd through the real E2B SDK (``Sandbox`` and ``AsyncSandbox``) against the local runtime."""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from e2b import (
    AsyncSandbox,
    CommandExitException,
    FilesystemEventType,
    FileType,
    NotFoundException,
    PtySize,
    Sandbox,
    TimeoutException,
)
from e2b.exceptions import FileNotFoundException, InvalidArgumentException


@pytest.fixture(scope="module")
def sbx(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sandbox = Sandbox.create(template="base", **e2b_connection)
    try:
        yield sandbox
    finally:
        sandbox.kill()


@pytest.fixture(scope="module")
async def asbx(e2b_connection: dict[str, Any]) -> AsyncIterator[AsyncSandbox]:
    sandbox = await AsyncSandbox.create(template="base", **e2b_connection)
    try:
        yield sandbox
    finally:
        await sandbox.kill()


def _fresh_dir(sandbox: Sandbox) -> str:
    path = f"/home/user/t-{uuid.uuid4().hex[:8]}"
    assert sandbox.files.make_dir(path)
    return path


def _wait_until(predicate: Any, what: str, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


# -- commands --------------------------------------------------------------------------------------


def test_run_output_and_exit_code(sbx: Sandbox) -> None:
    result = sbx.commands.run("echo out; echo err >&2")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0)
    with pytest.raises(CommandExitException) as info:
        sbx.commands.run("echo bad >&2; exit 4")
    assert info.value.exit_code == 4
    assert info.value.stderr == "bad\n"


def test_run_envs_cwd_and_user(sbx: Sandbox) -> None:
    result = sbx.commands.run("echo $A:$HOME:$(whoami):$PWD", envs={"A": "1"}, cwd="/tmp")
    assert result.stdout == "1:/home/user:user:/tmp\n"
    sbx.files.make_dir("rel-cwd")
    assert sbx.commands.run("pwd", cwd="rel-cwd").stdout == "/home/user/rel-cwd\n"


def test_run_streams_callbacks(sbx: Sandbox) -> None:
    seen: list[str] = []
    sbx.commands.run("for i in 1 2 3; do echo $i; done", on_stdout=seen.append)
    assert "".join(seen) == "1\n2\n3\n"


def test_non_utf8_output(sbx: Sandbox) -> None:
    result = sbx.commands.run("printf 'a\\xffb'")
    assert result.stdout == "a\ufffdb"


def test_timeout_raises_and_kills(sbx: Sandbox) -> None:
    marker = f"/tmp/timeout-{uuid.uuid4().hex}"
    with pytest.raises(TimeoutException):
        sbx.commands.run(f"sleep 2 && touch {marker}", timeout=0.5)
    time.sleep(2.5)
    assert not sbx.files.exists(marker)
    assert all("touch" not in " ".join(p.args) for p in sbx.commands.list())


def test_background_connect_list_kill(sbx: Sandbox) -> None:
    handle = sbx.commands.run("echo started; sleep 60", background=True)
    assert handle.pid in [p.pid for p in sbx.commands.list()]
    again = sbx.commands.connect(handle.pid)
    assert again.pid == handle.pid
    assert sbx.commands.kill(handle.pid)
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.stdout == "started\n"
    with pytest.raises(CommandExitException):
        again.wait()
    assert handle.pid not in [p.pid for p in sbx.commands.list()]
    assert sbx.commands.kill(handle.pid) is False
    with pytest.raises(NotFoundException):
        sbx.commands.connect(handle.pid)


def test_send_stdin_and_close(sbx: Sandbox) -> None:
    handle = sbx.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("hello ")
    sbx.commands.send_stdin(handle.pid, b"world")
    handle.close_stdin()
    result = handle.wait()
    assert result.stdout == "hello world"


def test_stream_input(sbx: Sandbox) -> None:
    handle = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.stream_input(handle.pid, ["a", b"b", "c"])
    sbx.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "abc"


def test_pty(sbx: Sandbox) -> None:
    handle = sbx.pty.create(PtySize(rows=24, cols=80))
    sbx.pty.resize(handle.pid, PtySize(rows=40, cols=100))
    sbx.pty.send_stdin(handle.pid, b"stty size; echo $TERM; exit 0\n")
    chunks: list[bytes] = []
    result = handle.wait(on_pty=chunks.append)
    text = b"".join(chunks).decode(errors="replace")
    assert "40 100" in text
    assert "xterm" in text
    assert result.exit_code == 0


def test_pty_kill(sbx: Sandbox) -> None:
    handle = sbx.pty.create(PtySize(rows=24, cols=80))
    assert sbx.pty.kill(handle.pid)
    with pytest.raises(CommandExitException):
        handle.wait()


# -- files -----------------------------------------------------------------------------------------


def test_write_read_text_and_binary(sbx: Sandbox) -> None:
    base = _fresh_dir(sbx)
    info = sbx.files.write(f"{base}/deep/a.txt", "héllo")
    assert info.path == f"{base}/deep/a.txt"
    assert sbx.files.read(f"{base}/deep/a.txt") == "héllo"
    blob = bytes(range(256)) * 1000
    sbx.files.write(f"{base}/b.bin", blob)
    assert bytes(sbx.files.read(f"{base}/b.bin", format="bytes")) == blob
    assert bytes(sbx.files.read(f"{base}/b.bin", format="bytes", gzip=True)) == blob
    stream = sbx.files.read(f"{base}/b.bin", format="stream")
    assert b"".join(stream) == blob
    with pytest.raises(FileNotFoundException):
        sbx.files.read(f"{base}/missing")


def test_write_variants(sbx: Sandbox) -> None:
    base = _fresh_dir(sbx)
    infos = sbx.files.write_files(
        [
            {"path": f"{base}/m/1.txt", "data": "one"},
            {"path": f"{base}/m/2.bin", "data": b"\x00two"},
        ]
    )
    assert [i.name for i in infos] == ["1.txt", "2.bin"]
    assert sbx.files.read(f"{base}/m/1.txt") == "one"
    payload = os.urandom(2 * 1024 * 1024)
    sbx.files.write(f"{base}/octet.bin", io.BytesIO(payload))
    assert bytes(sbx.files.read(f"{base}/octet.bin", format="bytes")) == payload
    sbx.files.write(f"{base}/gz.txt", "zipped " * 1000, gzip=True)
    assert sbx.files.read(f"{base}/gz.txt") == "zipped " * 1000


def test_list_exists_info(sbx: Sandbox) -> None:
    base = _fresh_dir(sbx)
    sbx.files.write(f"{base}/a/b/c.txt", "c")
    sbx.files.write(f"{base}/top.txt", "12345")
    names = sorted(e.name for e in sbx.files.list(base))
    assert names == ["a", "top.txt"]
    deep = sorted(e.path for e in sbx.files.list(base, depth=3))
    assert deep == [f"{base}/a", f"{base}/a/b", f"{base}/a/b/c.txt", f"{base}/top.txt"]
    assert sbx.files.exists(f"{base}/top.txt")
    assert not sbx.files.exists(f"{base}/nope")
    info = sbx.files.get_info(f"{base}/top.txt")
    assert (info.type, info.size, info.permissions) == (FileType.FILE, 5, "-rw-r--r--")
    assert sbx.files.get_info(f"{base}/a").type == FileType.DIR
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info(f"{base}/nope")
    with pytest.raises(InvalidArgumentException):
        sbx.files.list(base, depth=0)


def test_make_dir_rename_remove(sbx: Sandbox) -> None:
    base = _fresh_dir(sbx)
    assert sbx.files.make_dir(f"{base}/d")
    assert sbx.files.make_dir(f"{base}/d") is False
    sbx.files.write(f"{base}/d/f.txt", "x")
    moved = sbx.files.rename(f"{base}/d", f"{base}/e")
    assert moved.path == f"{base}/e"
    assert sbx.files.read(f"{base}/e/f.txt") == "x"
    sbx.files.remove(f"{base}/e")
    assert not sbx.files.exists(f"{base}/e")
    with pytest.raises(FileNotFoundException):
        sbx.files.rename(f"{base}/e", f"{base}/g")


def test_dot_dot_paths(sbx: Sandbox) -> None:
    sbx.files.write("../user/dots.txt", "dots")
    assert sbx.files.read("/home/user/dots.txt") == "dots"
    assert sbx.files.read("/../../home/user/../user/dots.txt") == "dots"
    # Leaving the home directory is allowed inside the sandbox; the jail is the boundary.
    assert sbx.files.exists("../../../../etc/passwd")


def test_sync_watch_dir(sbx: Sandbox) -> None:
    base = _fresh_dir(sbx)
    handle = sbx.files.watch_dir(base, recursive=True)
    try:
        sbx.files.write(f"{base}/w.txt", "1")
        sbx.files.make_dir(f"{base}/sub")
        sbx.files.write(f"{base}/sub/inner.txt", "2")
        sbx.files.remove(f"{base}/w.txt")
        seen: list[tuple[str, FilesystemEventType]] = []

        def done() -> bool:
            seen.extend((e.name, e.type) for e in handle.get_new_events())
            return ("w.txt", FilesystemEventType.REMOVE) in seen

        _wait_until(done, "watch events")
        assert ("w.txt", FilesystemEventType.CREATE) in seen
        assert ("w.txt", FilesystemEventType.WRITE) in seen
        assert ("sub", FilesystemEventType.CREATE) in seen
        assert ("sub/inner.txt", FilesystemEventType.CREATE) in seen
    finally:
        handle.stop()
    with pytest.raises(FileNotFoundException):
        sbx.files.watch_dir(f"{base}/missing")


# -- async SDK -------------------------------------------------------------------------------------


async def test_async_run_and_background(asbx: AsyncSandbox) -> None:
    result = await asbx.commands.run("echo async")
    assert result.stdout == "async\n"
    lines: list[str] = []
    handle = await asbx.commands.run(
        "echo a; sleep 0.2; echo b; exit 2", background=True, on_stdout=lines.append
    )
    with pytest.raises(CommandExitException) as info:
        await handle.wait()
    assert info.value.exit_code == 2
    assert "".join(lines) == "a\nb\n"
    with pytest.raises(TimeoutException):
        await asbx.commands.run("sleep 5", timeout=0.3)


async def test_async_stdin_stream(asbx: AsyncSandbox) -> None:
    handle = await asbx.commands.run("cat", background=True, stdin=True)
    writer = asbx.commands.stream_input(handle.pid)
    await writer.send("x")
    await writer.send(b"y")
    await writer.close()
    await asbx.commands.close_stdin(handle.pid)
    assert (await handle.wait()).stdout == "xy"


async def test_async_files_and_watch(asbx: AsyncSandbox) -> None:
    base = f"/home/user/aw-{uuid.uuid4().hex[:8]}"
    assert await asbx.files.make_dir(base)
    events: list[Any] = []
    got = asyncio.Event()

    def on_event(event: Any) -> None:
        events.append(event)
        if event.type == FilesystemEventType.WRITE:
            got.set()

    handle = await asbx.files.watch_dir(base, on_event=on_event)
    try:
        await asbx.files.write(f"{base}/a.txt", "hi")
        await asyncio.wait_for(got.wait(), 20)
    finally:
        await handle.stop()  # type: ignore[no-untyped-call]
    assert events[0].name == "a.txt"
    assert events[0].type == FilesystemEventType.CREATE
    assert await asbx.files.read(f"{base}/a.txt") == "hi"
    assert [e.name for e in await asbx.files.list(base)] == ["a.txt"]


async def test_async_pty(asbx: AsyncSandbox) -> None:
    chunks: list[bytes] = []
    handle = await asbx.pty.create(PtySize(rows=10, cols=50), on_data=chunks.append)
    await asbx.pty.send_stdin(handle.pid, b"echo pty-$((6*7)); exit 3\n")
    with pytest.raises(CommandExitException) as info:
        await handle.wait()
    assert info.value.exit_code == 3
    assert b"pty-42" in b"".join(chunks)
