"""Where the local runtime used to differ from E2B, through the real SDK against the real runtime.

Each test states E2B's behaviour (from E2B's own SDK tests) and checks the runtime matches it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from e2b import (
    AsyncSandbox,
    CommandExitException,
    FilesystemEventType,
    Sandbox,
    SandboxException,
)
from e2b.exceptions import InvalidArgumentException

from langchain_e2b.local import LocalRuntime


@pytest.fixture(scope="module")
def sbx(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sandbox = Sandbox.create(template="base", secure=True, **e2b_connection)
    try:
        yield sandbox
    finally:
        sandbox.kill()


def _fresh_dir(sandbox: Sandbox) -> str:
    path = f"/home/user/c-{uuid.uuid4().hex[:8]}"
    assert sandbox.files.make_dir(path)
    return path


# -- files -----------------------------------------------------------------------------------------


def test_remove_of_a_missing_path_succeeds_silently(sbx: Sandbox) -> None:
    missing = f"{_fresh_dir(sbx)}/never-created.txt"
    sbx.files.remove(missing)
    sbx.files.remove(f"{missing}/below/a/file")
    assert not sbx.files.exists(missing)


def test_writing_over_a_file_replaces_its_metadata(sbx: Sandbox) -> None:
    if "metadata" not in inspect.signature(sbx.files.write).parameters:
        pytest.skip(f"this e2b release ({version('e2b')}) cannot write file metadata")
    path = f"{_fresh_dir(sbx)}/meta.txt"
    sbx.files.write(path, "one", metadata={"owner": "alice", "stale": "yes"})
    assert sbx.files.get_info(path).metadata == {"owner": "alice", "stale": "yes"}
    sbx.files.write(path, "two", metadata={"owner": "bob"})
    assert sbx.files.get_info(path).metadata == {"owner": "bob"}
    sbx.files.write(path, "three")
    assert not sbx.files.get_info(path).metadata
    assert sbx.files.read(path) == "three"


def _poll_events(handle: Any, wanted: set[tuple[str, FilesystemEventType]]) -> set[Any]:
    seen: set[tuple[str, FilesystemEventType]] = set()
    deadline = time.monotonic() + 20
    while not wanted <= seen and time.monotonic() < deadline:
        seen |= {(e.name, e.type) for e in handle.get_new_events()}
        time.sleep(0.05)
    return seen


def test_recursive_watch_sees_nested_and_new_directories(sbx: Sandbox) -> None:
    root = _fresh_dir(sbx)
    sbx.files.make_dir(f"{root}/old/deeper")
    handle = sbx.files.watch_dir(root, recursive=True)
    try:
        sbx.files.write(f"{root}/old/deeper/a.txt", "a")
        # One call makes the whole chain, then writes into it at once: the watch must still
        # see the file, however fast it follows the directories' creation.
        sbx.commands.run(f"mkdir -p {root}/new/x/y && echo b > {root}/new/x/y/b.txt")
        sbx.files.write(f"{root}/new/x/y/c.txt", "c")
        wanted = {
            ("old/deeper/a.txt", FilesystemEventType.WRITE),
            ("new", FilesystemEventType.CREATE),
            ("new/x/y", FilesystemEventType.CREATE),
            ("new/x/y/b.txt", FilesystemEventType.CREATE),
            ("new/x/y/c.txt", FilesystemEventType.WRITE),
        }
        seen = _poll_events(handle, wanted)
        assert wanted <= seen, sorted(wanted - seen)
    finally:
        handle.stop()


async def test_async_recursive_watch_sees_new_directories(e2b_connection: dict[str, Any]) -> None:
    sandbox = await AsyncSandbox.create(template="base", **e2b_connection)
    try:
        root = f"/home/user/w-{uuid.uuid4().hex[:8]}"
        await sandbox.files.make_dir(root)
        events: list[tuple[str, FilesystemEventType]] = []
        done = asyncio.Event()
        target = ("n1/n2/n3/deep.txt", FilesystemEventType.WRITE)

        def on_event(event: Any) -> None:
            events.append((event.name, event.type))
            if (event.name, event.type) == target:
                done.set()

        handle = await sandbox.files.watch_dir(root, on_event, recursive=True)
        try:
            await sandbox.commands.run(f"mkdir -p {root}/n1/n2/n3")
            await sandbox.files.write(f"{root}/n1/n2/n3/deep.txt", "deep")
            await asyncio.wait_for(done.wait(), 20)
        finally:
            await handle.stop()
        assert ("n1/n2/n3", FilesystemEventType.CREATE) in events
    finally:
        await sandbox.kill()


# -- signed file URLs ------------------------------------------------------------------------------


def test_signed_download_url(sbx: Sandbox) -> None:
    path = f"{_fresh_dir(sbx)}/signed.txt"
    sbx.files.write(path, "signed content")
    for url in (sbx.download_url(path, "user"), sbx.download_url(path, "user", 120)):
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert response.read() == b"signed content"


def test_signed_upload_url(sbx: Sandbox) -> None:
    path = f"{_fresh_dir(sbx)}/uploaded.txt"
    url = sbx.upload_url(path, "user", 120)
    response = httpx.post(url, files={"file": ("uploaded.txt", b"from a signed url")}, timeout=30)
    assert response.status_code == 200, response.text
    assert sbx.files.read(path) == "from a signed url"


def _http_error(url: str) -> tuple[int, Any]:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=30)
    return info.value.code, json.loads(info.value.read().decode())


def test_expired_signed_url_is_refused(sbx: Sandbox) -> None:
    path = f"{_fresh_dir(sbx)}/expired.txt"
    sbx.files.write(path, "secret")
    status, body = _http_error(sbx.download_url(path, "user", use_signature_expiration=-120))
    assert (status, body) == (401, {"code": 401, "message": "signature is already expired"})


def test_forged_or_misused_signatures_are_refused(sbx: Sandbox) -> None:
    root = _fresh_dir(sbx)
    sbx.files.write(f"{root}/a.txt", "a")
    sbx.files.write(f"{root}/b.txt", "b")
    good = sbx.download_url(f"{root}/a.txt", "user", 120)
    parts = urllib.parse.urlsplit(good)
    params = dict(urllib.parse.parse_qsl(parts.query))

    def url(**changes: str) -> str:
        query = urllib.parse.urlencode({**params, **changes}, quote_via=urllib.parse.quote)
        return urllib.parse.urlunsplit(parts._replace(query=query))

    # Another path, a later expiry, a made-up signature, another user, no signature at all.
    for bad in (
        url(path=f"{root}/b.txt"),
        url(signature_expiration=str(int(params["signature_expiration"]) + 3600)),
        url(signature="v1_" + "A" * 43),
        url(username="root"),
    ):
        status, body = _http_error(bad)
        assert status == 401, (bad, body)
    unsigned = {k: v for k, v in params.items() if not k.startswith("signature")}
    query = urllib.parse.urlencode(unsigned, quote_via=urllib.parse.quote)
    # Without a signature nothing says which sandbox is meant (no E2b-Sandbox-Id header).
    status, body = _http_error(urllib.parse.urlunsplit(parts._replace(query=query)))
    assert (status, body["message"]) == (502, "The sandbox was not found")
    # A read signature does not allow a write.
    write = httpx.post(good, files={"file": ("a.txt", b"overwritten")}, timeout=30)
    assert write.status_code == 401
    assert sbx.files.read(f"{root}/a.txt") == "a"


def test_a_signature_made_with_another_sandbox_token_is_refused(sbx: Sandbox) -> None:
    path = f"{_fresh_dir(sbx)}/mine.txt"
    sbx.files.write(path, "mine")
    # envd's v1 signature, computed here from its definition with a token that is not this
    # sandbox's.
    expiration = int(time.time()) + 120
    raw = f"{path}:read:user:not-this-sandbox-token:{expiration}".encode()
    signed = base64.b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()
    good = urllib.parse.urlsplit(sbx.download_url(path, "user", 120))
    params = dict(urllib.parse.parse_qsl(good.query))
    params["signature"] = f"v1_{signed}"
    params["signature_expiration"] = str(expiration)
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    status, body = _http_error(urllib.parse.urlunsplit(good._replace(query=query)))
    assert (status, body["message"]) == (401, "invalid signature (or its sandbox is gone)")


# -- commands --------------------------------------------------------------------------------------


def test_command_env_vars_do_not_leak_into_later_commands(sbx: Sandbox) -> None:
    first = sbx.commands.run("echo ${LEAK_CHECK:-unset}", envs={"LEAK_CHECK": "given"})
    assert first.stdout.strip() == "given"
    later = sbx.commands.run("echo ${LEAK_CHECK:-unset}")
    assert later.stdout.strip() == "unset"
    background = sbx.commands.run(
        "sleep 0.2; echo $BG_ONLY", envs={"BG_ONLY": "bg"}, background=True
    )
    assert sbx.commands.run("echo ${BG_ONLY:-unset}").stdout.strip() == "unset"
    assert background.wait().stdout.strip() == "bg"


@pytest.fixture
async def doomed(e2b_connection: dict[str, Any]) -> AsyncIterator[AsyncSandbox]:
    sandbox = await AsyncSandbox.create(template="base", **e2b_connection)
    try:
        yield sandbox
    finally:
        await sandbox.kill()


async def test_killing_the_sandbox_ends_a_waiting_async_command(doomed: AsyncSandbox) -> None:
    handle = await doomed.commands.run("sleep 60", background=True)
    await doomed.kill()
    with pytest.raises(SandboxException) as info:
        await asyncio.wait_for(handle.wait(), 30)
    # E2B's proxy ends the cut stream with UNAVAILABLE; newer SDKs then probe the sandbox's
    # health and add that it was killed. Older ones show the proxy's message alone.
    assert "ended before the stream completed" in str(info.value)


def test_killing_the_sandbox_ends_a_waiting_sync_command(e2b_connection: dict[str, Any]) -> None:
    sandbox = Sandbox.create(template="base", **e2b_connection)
    try:
        handle = sandbox.commands.run("sleep 60", background=True)
        sandbox.kill()
        started = time.monotonic()
        with pytest.raises(SandboxException) as info:
            handle.wait()
        assert time.monotonic() - started < 30
        assert "ended before the stream completed" in str(info.value)
    finally:
        sandbox.kill()


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["line\nfeed.txt", "carriage\rreturn.txt"])
def test_a_line_break_in_a_files_path_is_a_clear_400(sbx: Sandbox, name: str) -> None:
    path = f"{_fresh_dir(sbx)}/{name}"
    sbx.commands.run(f"printf data > {shlex.quote(path)}")
    with pytest.raises(InvalidArgumentException, match="line break"):
        sbx.files.read(path)
    with pytest.raises(InvalidArgumentException, match="line break"):
        sbx.files.write(path, "new")
    assert sbx.commands.run(f"cat {shlex.quote(path)}").stdout == "data"
    # The same request on the wire: a 400 in E2B's error shape that says what to do.
    for method in ("GET", "POST"):
        response = httpx.request(
            method,
            sbx.download_url(path) if method == "GET" else sbx.upload_url(path),
            files={"file": ("f", b"new")} if method == "POST" else None,
            timeout=30,
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == 400
        assert "line break" in body["message"]
        assert "rename" in body["message"]


def test_names_with_quotes_and_control_characters_download(sbx: Sandbox) -> None:
    root = _fresh_dir(sbx)
    for name in ('quote"and\\backslash.txt', "tab\there.txt", "bell\x07.txt", "naïve.txt"):
        path = f"{root}/{name}"
        sbx.files.write(path, name)
        assert sbx.files.read(path) == name
        with urllib.request.urlopen(sbx.download_url(path, "user"), timeout=30) as response:
            assert response.read() == name.encode()


def test_killing_an_unjailed_sandbox_ends_a_waiting_command_too() -> None:
    # Without a jail the agent is stopped with SIGTERM rather than killed with its namespace;
    # the waiting client must still hear that the sandbox went away, not an exit status.
    with LocalRuntime(pool_size=0, isolation=False) as runtime:
        options: dict[str, Any] = runtime.connection_options()
        sandbox = Sandbox.create(template="base", **options)
        handle = sandbox.commands.run("sleep 60", background=True)
        sandbox.kill()
        with pytest.raises(SandboxException) as info:
            handle.wait()
        assert not isinstance(info.value, CommandExitException)
        assert "ended before the stream completed" in str(info.value)
