"""The agent's envd over its unix socket, spoken to with Connect JSON as the E2B SDK speaks it."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from langchain_e2b.local import _connect, envd_process
from tests.local_runtime.conftest import (
    AgentClient,
    AgentProcess,
    b64,
    envelope,
    parse_envelopes,
    start_agent,
)

# -- basics ----------------------------------------------------------------------------------------


async def test_health_and_ready(envd_client: AgentClient) -> None:
    response = await envd_client.http.get("/health")
    assert response.status_code == 204
    response = await envd_client.http.get("/_ready")
    assert response.status_code == 200


async def test_base_template_has_no_jupyter(envd_client: AgentClient) -> None:
    for method, path in (("POST", "/execute"), ("GET", "/contexts")):
        response = await envd_client.http.request(method, path, json={"code": "1"})
        assert response.status_code == 404
    response = await envd_client.http.get("/health", headers={"E2b-Sandbox-Port": "49999"})
    assert response.status_code == 404


# -- processes -------------------------------------------------------------------------------------


async def test_start_streams_start_data_end(envd_client: AgentClient) -> None:
    out, err, end, messages, end_stream = await envd_client.run("echo hi; echo oops >&2")
    assert messages[0] == {"event": {"start": {"pid": messages[0]["event"]["start"]["pid"]}}}
    assert messages[0]["event"]["start"]["pid"] > 0
    assert out == b"hi\n"
    assert err == b"oops\n"
    assert end == {"exited": True, "status": "exit status 0"}
    assert end_stream == {}


async def test_exit_code(envd_client: AgentClient) -> None:
    _, _, end, _, _ = await envd_client.run("exit 3")
    assert end["exitCode"] == 3
    assert end["status"] == "exit status 3"


async def test_binary_output(envd_client: AgentClient) -> None:
    out, _, _, _, _ = await envd_client.run("printf '\\xff\\x00\\xfe'")
    assert out == b"\xff\x00\xfe"


async def test_env_is_config_plus_request_only(envd_client: AgentClient) -> None:
    out, _, _, _, _ = await envd_client.run(
        "echo $FOO-$USER-${AGENT_SECRET:-none}", envs={"FOO": "x"}
    )
    assert out == b"x-user-none\n"


async def test_cwd_default_and_relative(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    (envd_agent.home / "sub").mkdir(exist_ok=True)
    out, _, _, _, _ = await envd_client.run("pwd")
    assert out.decode().strip() == str(envd_agent.home)
    out, _, _, _, _ = await envd_client.run("pwd", cwd="sub")
    assert out.decode().strip() == str(envd_agent.home / "sub")
    _, _, _, messages, end_stream = await envd_client.run("pwd", cwd="missing-dir")
    assert messages == []
    assert end_stream["error"]["code"] == "invalid_argument"


async def test_init_sets_global_env(tmp_path: Path) -> None:
    agent = start_agent(tmp_path)
    try:
        async with agent.client() as client:
            response = await client.http.post("/_init", json={"envVars": {"GLOBAL": "g"}})
            assert response.status_code == 204
            out, _, _, _, _ = await client.run("echo $GLOBAL")
            assert out == b"g\n"
            out, _, _, _, _ = await client.run("echo $GLOBAL", envs={"GLOBAL": "local"})
            assert out == b"local\n"
            response = await client.http.post("/_init", json={"envVars": {"A": 1}})
            assert response.status_code == 400
    finally:
        assert agent.stop() == 0


async def test_background_child_does_not_hold_the_command(envd_client: AgentClient) -> None:
    out, _, end, _, _ = await envd_client.run("sleep 30 & echo started")
    assert out == b"started\n"
    assert end["exited"] is True


async def test_list_and_kill(envd_client: AgentClient) -> None:
    body = {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", "sleep 60"]}, "tag": "t1"}
    async with envd_client.stream("process.Process/Start", body) as response:
        lines = response.aiter_raw()
        first = await anext(lines)
        pid = json.loads(first[5:])["event"]["start"]["pid"]
        status, listing = await envd_client.unary("process.Process/List", {})
        assert status == 200
        mine = [p for p in listing["processes"] if p["pid"] == pid]
        assert mine == [
            {
                "pid": pid,
                "tag": "t1",
                "config": {"cmd": "/bin/bash", "args": ["-l", "-c", "sleep 60"], "envs": {}},
            }
        ]
        status, reply = await envd_client.unary(
            "process.Process/SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"}
        )
        assert (status, reply) == (200, {})
        rest = b"".join([chunk async for chunk in lines])
    frames = []
    while rest:
        size = int.from_bytes(rest[1:5], "big")
        frames.append((rest[0], json.loads(rest[5 : 5 + size])))
        rest = rest[5 + size :]
    end = frames[-2][1]["event"]["end"]
    assert end == {"exitCode": -1, "status": "signal: killed"}
    assert frames[-1] == (2, {})
    status, listing = await envd_client.unary("process.Process/List", {})
    assert pid not in [p["pid"] for p in listing["processes"]]


async def test_unknown_pid_is_not_found(envd_client: AgentClient) -> None:
    for method, body in (
        ("process.Process/SendSignal", {"process": {"pid": 999999}, "signal": "SIGNAL_SIGKILL"}),
        ("process.Process/SendInput", {"process": {"pid": 999999}, "input": {"stdin": "eA=="}}),
        ("process.Process/CloseStdin", {"process": {"pid": 999999}}),
    ):
        status, error = await envd_client.unary(method, body)
        assert status == 404
        assert error["code"] == "not_found"
    messages, end_stream = await envd_client.collect(
        "process.Process/Connect", {"process": {"pid": 999999}}
    )
    assert messages == []
    assert end_stream["error"]["code"] == "not_found"


async def test_timeout_kills_the_process_group(
    envd_client: AgentClient, envd_agent: AgentProcess
) -> None:
    marker = envd_agent.home / "survivor"
    cmd = f"(sleep 1.5; touch {marker}) & sleep 30"
    _, _, end, messages, end_stream = await envd_client.run(
        cmd, headers={"Connect-Timeout-Ms": "300"}
    )
    assert end == {}
    assert end_stream["error"]["code"] == "deadline_exceeded"
    pid = messages[0]["event"]["start"]["pid"]
    # The group's kill is sent as the deadline passes; give it a bounded moment to land.
    for _ in range(50):
        if not _live_group_members(pid):
            break
        await asyncio.sleep(0.1)
    assert _live_group_members(pid) == []
    await asyncio.sleep(2)
    assert not marker.exists()


async def test_keepalives(envd_client: AgentClient) -> None:
    _, _, end, messages, _ = await envd_client.run(
        "sleep 1.2", headers={"Keepalive-Ping-Interval": "0.3"}
    )
    assert {"event": {"keepalive": {}}} in messages
    assert end["exited"] is True


def _stdout_sizes(messages: list[Any]) -> list[int]:
    return [
        len(base64.b64decode(m["event"]["data"]["stdout"]))
        for m in messages
        if "stdout" in m["event"].get("data", {})
    ]


async def test_output_that_waited_for_the_client_goes_out_in_larger_messages(
    envd_client: AgentClient,
) -> None:
    # A client slower than the process gets the reads queued meanwhile together: fewer messages
    # for the gateway and the SDK to handle, the same bytes.
    size = 8_000_000
    process = {"cmd": "/bin/bash", "args": ["-c", f"head -c {size} /dev/zero | tr '\\0' x"]}
    async with envd_client.stream(
        "process.Process/Start", {"process": process, "stdin": False}
    ) as response:
        chunks = response.aiter_raw()
        data = bytearray(await anext(chunks))
        await asyncio.sleep(1)  # the process fills every buffer on the way meanwhile
        async for chunk in chunks:
            data += chunk
    frames = parse_envelopes(bytes(data))
    messages = [m for _, m in frames[:-1]]
    assert frames[-1] == (2, {})
    assert messages[-1]["event"]["end"] == {"exited": True, "status": "exit status 0"}
    out = b"".join(
        base64.b64decode(m["event"]["data"]["stdout"])
        for m in messages
        if "stdout" in m["event"].get("data", {})
    )
    assert out == b"x" * size
    sizes = _stdout_sizes(messages)
    read_chunk, most = envd_process.READ_CHUNK, envd_process.MAX_DATA_MESSAGE
    assert max(sizes) > read_chunk, "no message carried more than one read"
    assert max(sizes) < most + read_chunk


async def test_output_that_comes_slowly_goes_out_at_once(envd_client: AgentClient) -> None:
    process = {"cmd": "/bin/bash", "args": ["-c", "echo a; sleep 0.5; echo b"]}
    async with envd_client.stream(
        "process.Process/Start", {"process": process, "stdin": False}
    ) as response:
        data = bytearray()
        chunks = response.aiter_raw()
        async for chunk in chunks:
            data += chunk
            if b64("a\n").encode() in data:
                break  # the first line arrived before the second was printed
        started = time.monotonic()
        async for chunk in chunks:
            data += chunk
    assert time.monotonic() - started > 0.2, "the first line waited for the second"
    messages = [m for _, m in parse_envelopes(bytes(data))[:-1]]
    assert [base64.b64decode(m["event"]["data"]["stdout"]) for m in messages[1:-1]] == [
        b"a\n",
        b"b\n",
    ]


def test_data_messages_are_framed_as_connect_json() -> None:
    # Written without a JSON encoder: the bytes must be what the encoder would have made.
    for kind in ("stdout", "stderr", "pty"):
        for data in (b"", b"a", b'\x00\xff\n"\\', os.urandom(100_000)):
            message = {"event": {"data": {kind: b64(data)}}}
            framed = _connect.envelope(message)
            assert envd_process._data_frame(kind, [data[:3], data[3:]]) == framed
            assert envd_process._data_frame(kind, [data]) == framed


async def test_stdin_send_and_close(envd_client: AgentClient) -> None:
    body = {"process": {"cmd": "/bin/cat", "args": []}, "stdin": True}
    async with envd_client.stream("process.Process/Start", body) as response:
        chunks = response.aiter_raw()
        pid = json.loads((await anext(chunks))[5:])["event"]["start"]["pid"]
        status, _ = await envd_client.unary(
            "process.Process/SendInput", {"process": {"pid": pid}, "input": {"stdin": b64("ab")}}
        )
        assert status == 200
        status, _ = await envd_client.unary("process.Process/CloseStdin", {"process": {"pid": pid}})
        assert status == 200
        data = b"".join([c async for c in chunks])
    assert b64("ab").encode() in data
    assert b'"exited":true' in data


async def test_stream_input(envd_client: AgentClient) -> None:
    body = {"process": {"cmd": "/bin/cat", "args": []}, "stdin": True}
    async with envd_client.stream("process.Process/Start", body) as response:
        chunks = response.aiter_raw()
        pid = json.loads((await anext(chunks))[5:])["event"]["start"]["pid"]

        async def requests() -> AsyncIterator[bytes]:
            yield envelope({"start": {"process": {"pid": pid}}})
            for part in ("one ", "two"):
                yield envelope({"data": {"input": {"stdin": b64(part)}}})
                await asyncio.sleep(0.05)

        reply = await envd_client.http.post(
            "/process.Process/StreamInput",
            content=requests(),
            headers={"Content-Type": "application/connect+json"},
        )
        assert reply.status_code == 200
        assert reply.content == envelope({}) + envelope({}, 2)
        await envd_client.unary("process.Process/CloseStdin", {"process": {"pid": pid}})
        data = b"".join([c async for c in chunks])
    out = b"".join(
        base64.b64decode(m["event"]["data"]["stdout"])
        for m in _messages(data)
        if "data" in m.get("event", {})
    )
    assert out == b"one two"


async def test_connect_reattaches(envd_client: AgentClient) -> None:
    cmd = "for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.2; done"
    body = {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", cmd]}, "stdin": False}
    async with envd_client.stream("process.Process/Start", body) as response:
        pid = json.loads((await anext(response.aiter_raw()))[5:])["event"]["start"]["pid"]
    messages, end_stream = await envd_client.collect(
        "process.Process/Connect", {"process": {"pid": pid}}
    )
    assert messages[0] == {"event": {"start": {"pid": pid}}}
    out = b"".join(
        base64.b64decode(m["event"]["data"]["stdout"]) for m in messages if "data" in m["event"]
    )
    assert b"tick6" in out
    assert messages[-1]["event"]["end"]["exited"] is True
    assert end_stream == {}


async def test_pty(envd_client: AgentClient) -> None:
    body = {
        "process": {"cmd": "/bin/bash", "args": ["-i", "-l"], "envs": {"TERM": "xterm"}},
        "pty": {"size": {"cols": 80, "rows": 24}},
    }
    async with envd_client.stream("process.Process/Start", body) as response:
        chunks = response.aiter_raw()
        pid = json.loads((await anext(chunks))[5:])["event"]["start"]["pid"]
        status, _ = await envd_client.unary(
            "process.Process/Update",
            {"process": {"pid": pid}, "pty": {"size": {"cols": 123, "rows": 45}}},
        )
        assert status == 200
        await envd_client.unary(
            "process.Process/SendInput",
            {"process": {"pid": pid}, "input": {"pty": b64("stty size; exit 7\n")}},
        )
        data = b"".join([c async for c in chunks])
    messages = _messages(data)
    out = b"".join(
        base64.b64decode(m["event"]["data"]["pty"])
        for m in messages
        if "data" in m.get("event", {})
    )
    assert b"45 123" in out
    assert messages[-1]["event"]["end"]["exitCode"] == 7


async def test_malformed_requests(envd_client: AgentClient) -> None:
    status, error = await envd_client.unary("filesystem.Filesystem/Stat", b"{not json")
    assert status == 400
    assert error["code"] == "invalid_argument"
    status, error = await envd_client.unary("filesystem.Filesystem/Nope", {})
    assert error["code"] == "unimplemented"
    status, error = await envd_client.unary("filesystem.Filesystem/Stat", [1, 2])
    assert error["code"] == "invalid_argument"
    status, error = await envd_client.unary(
        "process.Process/SendSignal", {"process": {"pid": "x"}, "signal": "SIGNAL_SIGKILL"}
    )
    assert error["code"] == "invalid_argument"
    async with envd_client.http.stream(
        "POST",
        "/process.Process/Start",
        content=b"\x00\x00\x00\x00\x05{bad}",
        headers={"Content-Type": "application/connect+json"},
    ) as response:
        data = await response.aread()
    assert _frames(data)[-1][1]["error"]["code"] == "invalid_argument"
    # Still serving.
    out, _, _, _, _ = await envd_client.run("echo alive")
    assert out == b"alive\n"


# -- filesystem ------------------------------------------------------------------------------------


async def test_stat_file_and_dir(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    target = envd_agent.home / "stat.txt"
    target.write_bytes(b"hello")
    target.chmod(0o644)
    status, reply = await envd_client.unary("filesystem.Filesystem/Stat", {"path": "stat.txt"})
    assert status == 200
    entry = reply["entry"]
    assert entry["name"] == "stat.txt"
    assert entry["path"] == str(target)
    assert entry["type"] == "FILE_TYPE_FILE"
    assert entry["size"] == "5"
    assert entry["mode"] == 0o644
    assert entry["permissions"] == "-rw-r--r--"
    assert entry["owner"] == "user"
    assert entry["modifiedTime"].endswith("Z")
    status, reply = await envd_client.unary("filesystem.Filesystem/Stat", {"path": "~"})
    assert reply["entry"]["type"] == "FILE_TYPE_DIRECTORY"
    assert reply["entry"]["permissions"].startswith("d")
    status, error = await envd_client.unary("filesystem.Filesystem/Stat", {"path": "nope"})
    assert (status, error["code"]) == (404, "not_found")


async def test_symlink_entry(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    (envd_agent.home / "real.txt").write_text("x")
    link = envd_agent.home / "link.txt"
    if not link.is_symlink():
        link.symlink_to("real.txt")
    _, reply = await envd_client.unary("filesystem.Filesystem/Stat", {"path": "link.txt"})
    assert reply["entry"]["isSymlink"] is True
    assert reply["entry"]["type"] == "FILE_TYPE_FILE"
    assert reply["entry"]["symlinkTarget"] == str(envd_agent.home / "real.txt")


async def test_make_dir_list_move_remove(
    envd_client: AgentClient, envd_agent: AgentProcess
) -> None:
    status, reply = await envd_client.unary("filesystem.Filesystem/MakeDir", {"path": "t/a/b"})
    assert status == 200
    assert reply["entry"]["path"] == str(envd_agent.home / "t/a/b")
    status, error = await envd_client.unary("filesystem.Filesystem/MakeDir", {"path": "t/a"})
    assert (status, error["code"]) == (409, "already_exists")
    (envd_agent.home / "t/a/f.txt").write_text("data")
    (envd_agent.home / "t/a/b/g.txt").write_text("data")

    _, reply = await envd_client.unary("filesystem.Filesystem/ListDir", {"path": "t", "depth": 1})
    assert [e["path"] for e in reply["entries"]] == [str(envd_agent.home / "t/a")]
    _, reply = await envd_client.unary("filesystem.Filesystem/ListDir", {"path": "t", "depth": 3})
    assert sorted(e["path"].removeprefix(str(envd_agent.home)) for e in reply["entries"]) == [
        "/t/a",
        "/t/a/b",
        "/t/a/b/g.txt",
        "/t/a/f.txt",
    ]
    status, error = await envd_client.unary("filesystem.Filesystem/ListDir", {"path": "t/a/f.txt"})
    assert error["code"] == "invalid_argument"
    status, error = await envd_client.unary("filesystem.Filesystem/ListDir", {"path": "t/zz"})
    assert error["code"] == "not_found"

    status, reply = await envd_client.unary(
        "filesystem.Filesystem/Move", {"source": "t/a/f.txt", "destination": "t/new/f2.txt"}
    )
    assert status == 200
    assert reply["entry"]["name"] == "f2.txt"
    assert (envd_agent.home / "t/new/f2.txt").read_text() == "data"
    status, error = await envd_client.unary(
        "filesystem.Filesystem/Move", {"source": "t/missing", "destination": "t/x"}
    )
    assert error["code"] == "not_found"

    status, _ = await envd_client.unary("filesystem.Filesystem/Remove", {"path": "t"})
    assert status == 200
    assert not (envd_agent.home / "t").exists()
    # As on E2B, removing what is not there succeeds.
    status, reply = await envd_client.unary("filesystem.Filesystem/Remove", {"path": "t"})
    assert (status, reply) == (200, {})


async def test_dot_dot_paths_resolve(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    status, reply = await envd_client.unary(
        "filesystem.Filesystem/Stat", {"path": "../" + envd_agent.home.name}
    )
    assert status == 200
    assert reply["entry"]["path"] == str(envd_agent.home)


# -- /files ----------------------------------------------------------------------------------------


async def test_files_multipart_roundtrip(
    envd_client: AgentClient, envd_agent: AgentProcess
) -> None:
    response = await envd_client.http.post(
        "/files", params={"path": "up/one.txt"}, files={"file": ("up/one.txt", b"1\r\n--x")}
    )
    assert response.status_code == 200
    assert response.json() == [
        {"name": "one.txt", "type": "file", "path": str(envd_agent.home / "up/one.txt")}
    ]
    response = await envd_client.http.get("/files", params={"path": "up/one.txt"})
    assert response.status_code == 200
    assert response.content == b"1\r\n--x"


async def test_files_multi_part_upload(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    files = [
        ("file", ("multi/a.bin", payload)),
        ("file", ("multi/b.txt", b"")),
        ("file", ('multi/q"uote.txt', b"q")),
    ]
    response = await envd_client.http.post("/files", files=files)
    assert response.status_code == 200
    assert [item["name"] for item in response.json()] == ["a.bin", "b.txt", 'q"uote.txt']
    assert (envd_agent.home / "multi/a.bin").read_bytes() == payload
    assert (envd_agent.home / "multi/b.txt").read_bytes() == b""
    assert (envd_agent.home / 'multi/q"uote.txt').read_bytes() == b"q"


async def test_files_octet_stream_and_gzip(
    envd_client: AgentClient, envd_agent: AgentProcess
) -> None:
    response = await envd_client.http.post(
        "/files",
        params={"path": "/tmp/../" + str(envd_agent.home / "oct.bin")},
        content=b"\x00\x01raw",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert (envd_agent.home / "oct.bin").read_bytes() == b"\x00\x01raw"
    big = b"compress me " * 100_000
    response = await envd_client.http.post(
        "/files",
        params={"path": "gz/z.txt"},
        content=gzip.compress(big),
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert (envd_agent.home / "gz/z.txt").read_bytes() == big
    response = await envd_client.http.post(
        "/files",
        params={"path": "gz/bad.txt"},
        content=b"not gzip",
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    response = await envd_client.http.post(
        "/files", content=b"x", headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 400


async def test_files_download_gzip_and_errors(
    envd_client: AgentClient, envd_agent: AgentProcess
) -> None:
    data = b"abc" * 50_000
    (envd_agent.home / "dl.txt").write_bytes(data)
    response = await envd_client.http.get(
        "/files", params={"path": "dl.txt"}, headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == data
    response = await envd_client.http.get(
        "/files", params={"path": "dl.txt"}, headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(data))
    assert response.content == data
    response = await envd_client.http.get("/files", params={"path": "missing.txt"})
    assert response.status_code == 404
    assert response.json()["code"] == 404
    response = await envd_client.http.get("/files", params={"path": "~"})
    assert response.status_code == 400
    response = await envd_client.http.post(
        "/files", params={"path": "~"}, files={"file": ("x", b"x")}
    )
    assert response.status_code == 400


async def test_files_no_space_is_507(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):  # noqa: ASYNC240
        pytest.skip("needs /dev/full")
    agent = start_agent(tmp_path)
    try:
        (agent.home / "full").symlink_to("/dev/full")
        async with agent.client() as client:
            response = await client.http.post(
                "/files",
                params={"path": "full"},
                content=b"x" * 100_000,
                headers={"Content-Type": "application/octet-stream"},
            )
        assert response.status_code == 507
        assert response.json()["code"] == 507
    finally:
        agent.stop()


# -- watching --------------------------------------------------------------------------------------


async def test_polling_watcher(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    (envd_agent.home / "w").mkdir(exist_ok=True)
    status, reply = await envd_client.unary(
        "filesystem.Filesystem/CreateWatcher", {"path": "w", "recursive": True}
    )
    assert status == 200
    watcher_id = reply["watcherId"]
    (envd_agent.home / "w/sub").mkdir()
    await asyncio.sleep(0.1)
    (envd_agent.home / "w/sub/f.txt").write_text("x")
    (envd_agent.home / "w/sub/f.txt").rename(envd_agent.home / "w/g.txt")
    (envd_agent.home / "w/g.txt").unlink()
    events: list[tuple[str, str]] = []
    for _ in range(50):
        _, reply = await envd_client.unary(
            "filesystem.Filesystem/GetWatcherEvents", {"watcherId": watcher_id}
        )
        events += [(e["name"], e["type"]) for e in reply["events"]]
        if ("g.txt", "EVENT_TYPE_REMOVE") in events:
            break
        await asyncio.sleep(0.05)
    assert events == [
        ("sub", "EVENT_TYPE_CREATE"),
        ("sub/f.txt", "EVENT_TYPE_CREATE"),
        ("sub/f.txt", "EVENT_TYPE_WRITE"),
        ("sub/f.txt", "EVENT_TYPE_RENAME"),
        ("g.txt", "EVENT_TYPE_CREATE"),
        ("g.txt", "EVENT_TYPE_REMOVE"),
    ]
    status, _ = await envd_client.unary(
        "filesystem.Filesystem/RemoveWatcher", {"watcherId": watcher_id}
    )
    assert status == 200
    _, error = await envd_client.unary(
        "filesystem.Filesystem/GetWatcherEvents", {"watcherId": watcher_id}
    )
    assert error["code"] == "not_found"
    _, error = await envd_client.unary("filesystem.Filesystem/CreateWatcher", {"path": "nope"})
    assert error["code"] == "not_found"


async def test_watch_dir_stream(envd_client: AgentClient, envd_agent: AgentProcess) -> None:
    (envd_agent.home / "ws").mkdir(exist_ok=True)
    body = {"path": "ws", "includeEntry": True}
    headers = {"Keepalive-Ping-Interval": "0.2"}
    async with envd_client.stream("filesystem.Filesystem/WatchDir", body, headers) as response:
        chunks = response.aiter_raw()
        buffer = await anext(chunks)
        assert _frames(buffer)[0] == (0, {"start": {}})
        (envd_agent.home / "ws/new.txt").write_text("hello")
        seen: list[dict[str, Any]] = []
        while not any(m.get("filesystem", {}).get("type") == "EVENT_TYPE_WRITE" for m in seen):
            buffer += await anext(chunks)
            seen = [m for _, m in _frames(buffer, partial=True)]
            if len(seen) > 50:
                break
    events = [m["filesystem"] for m in seen if "filesystem" in m]
    assert events[0]["name"] == "new.txt"
    assert events[0]["type"] == "EVENT_TYPE_CREATE"
    assert events[-1]["entry"]["size"] == "5"
    _, end_stream = await envd_client.collect(
        "filesystem.Filesystem/WatchDir", {"path": "ws/new.txt"}
    )
    assert end_stream["error"]["code"] == "invalid_argument"


# -- lifecycle -------------------------------------------------------------------------------------


async def test_sigterm_kills_children_and_exits_cleanly(tmp_path: Path) -> None:
    agent = start_agent(tmp_path)
    async with agent.client() as client:
        body = {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", "sleep 100 & sleep 100"]}}
        async with client.stream("process.Process/Start", body) as response:
            pid = json.loads((await anext(response.aiter_raw()))[5:])["event"]["start"]["pid"]
            # Bounded poll: a login shell on a loaded machine can take seconds to fork.
            deadline = time.monotonic() + 30
            while len(_live_group_members(pid)) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert len(_live_group_members(pid)) >= 2
            assert await asyncio.to_thread(agent.stop) == 0
    assert _live_group_members(pid) == []


def _live_group_members(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies do not count)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _frames(data: bytes, *, partial: bool = False) -> list[tuple[int, dict[str, Any]]]:
    out = []
    while len(data) >= 5:
        size = int.from_bytes(data[1:5], "big")
        if len(data) < 5 + size and partial:
            break
        out.append((data[0], json.loads(data[5 : 5 + size])))
        data = data[5 + size :]
    return out


def _messages(data: bytes) -> list[dict[str, Any]]:
    return [m for flags, m in _frames(data) if flags == 0]


async def test_code_interpreter_template_routes_jupyter(tmp_path: Path) -> None:
    agent = await asyncio.to_thread(start_agent, tmp_path, template="code-interpreter-v1")
    try:
        async with agent.client(timeout=120) as client:
            response = await client.http.get("/health", headers={"E2b-Sandbox-Port": "49999"})
            assert response.status_code == 200
            response = await client.http.post("/_init", json={"envVars": {"G": "global"}})
            assert response.status_code == 204
            response = await client.http.post(
                "/execute",
                json={"code": "import os; print(os.environ['G'])"},
                headers={"E2b-Sandbox-Port": "49999"},
            )
            lines = [json.loads(line) for line in response.text.splitlines() if line]
            assert "".join(x["text"] for x in lines if x["type"] == "stdout") == "global\n"
            out, _, _, _, _ = await client.run("echo $G")
            assert out == b"global\n"
    finally:
        assert await asyncio.to_thread(agent.stop) == 0
