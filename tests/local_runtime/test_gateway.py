"""Control plane of the local runtime, through the real E2B SDK."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import e2b
import httpx
import pytest
from e2b import Sandbox, SandboxQuery
from e2b_code_interpreter import AsyncSandbox as AsyncCodeSandbox
from e2b_code_interpreter import Sandbox as CodeSandbox

from langchain_e2b.local import LocalRuntime

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="exercises the local runtime only"
)


def test_create_run_kill(e2b_connection: dict[str, Any]) -> None:
    sandbox = CodeSandbox.create(metadata={"suite": "gateway"}, **e2b_connection)
    try:
        assert sandbox.is_running()
        assert sandbox.run_code("x = 41\nx + 1").text == "42"
        info = sandbox.get_info()
        assert info.sandbox_id == sandbox.sandbox_id
        assert info.metadata == {"suite": "gateway"}
    finally:
        assert sandbox.kill() is True
    assert not sandbox.is_running()
    assert Sandbox.kill(sandbox.sandbox_id, **e2b_connection) is False


def test_connect_reaches_same_sandbox(e2b_connection: dict[str, Any]) -> None:
    sandbox = CodeSandbox.create(**e2b_connection)
    try:
        sandbox.run_code("marker = 'kept'")
        again = CodeSandbox.connect(sandbox.sandbox_id, **e2b_connection)
        assert again.run_code("marker").text == "kept"
    finally:
        sandbox.kill()
    with pytest.raises(e2b.SandboxNotFoundException):
        CodeSandbox.connect(sandbox.sandbox_id, **e2b_connection)


async def test_async_sdk_create_and_kill(e2b_connection: dict[str, Any]) -> None:
    sandbox = await AsyncCodeSandbox.create(**e2b_connection)
    try:
        execution = await sandbox.run_code("sum(range(10))")
        assert execution.text == "45"
    finally:
        await sandbox.kill()


def test_base_template_runs_commands(e2b_connection: dict[str, Any]) -> None:
    sandbox = Sandbox.create(template="base", **e2b_connection)
    try:
        result = sandbox.commands.run("echo hello from $(whoami)")
        assert result.stdout.strip() == "hello from user"
    finally:
        sandbox.kill()


def test_list_filters_and_pages(e2b_connection: dict[str, Any]) -> None:
    tag = f"list-{time.monotonic_ns()}"
    made = [
        Sandbox.create(template="base", metadata={"tag": tag, "n a&me": str(i)}, **e2b_connection)
        for i in range(3)
    ]
    try:
        paginator = Sandbox.list(
            query=SandboxQuery(metadata={"tag": tag}), limit=2, **e2b_connection
        )
        seen = []
        while paginator.has_next:
            page = paginator.next_items()
            assert len(page) <= 2
            seen += [info.sandbox_id for info in page]
        assert sorted(seen) == sorted(s.sandbox_id for s in made)
        one = Sandbox.list(
            query=SandboxQuery(metadata={"tag": tag, "n a&me": "1"}), **e2b_connection
        ).next_items()
        assert [info.sandbox_id for info in one] == [made[1].sandbox_id]
    finally:
        for sandbox in made:
            sandbox.kill()


def test_timeout_expires_sandbox(e2b_connection: dict[str, Any]) -> None:
    sandbox = Sandbox.create(template="base", timeout=60, **e2b_connection)
    sandbox.set_timeout(1)
    deadline = time.monotonic() + 30
    while sandbox.is_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sandbox.is_running()
    with pytest.raises(e2b.SandboxException):
        sandbox.commands.run("true")


def test_unknown_template_is_clear(e2b_connection: dict[str, Any]) -> None:
    with pytest.raises(e2b.SandboxException, match="not available in the local runtime"):
        Sandbox.create(template="no-such-template", **e2b_connection)


def test_wrong_api_key_rejected(e2b_connection: dict[str, Any]) -> None:
    options = {**e2b_connection, "api_key": "wrong"}
    with pytest.raises(e2b.AuthenticationException):
        Sandbox.create(template="base", **options)


def test_data_plane_needs_the_sandbox_token(e2b_connection: dict[str, Any]) -> None:
    sandbox = Sandbox.create(template="base", **e2b_connection)
    try:
        url = e2b_connection["sandbox_url"] + "/files?path=/etc/hostname"
        headers = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "49983"}
        assert httpx.get(url, headers=headers).status_code == 401
        bad = {**headers, "X-Access-Token": "nope"}
        assert httpx.get(url, headers=bad).status_code == 401
    finally:
        sandbox.kill()


@pytest.fixture(scope="module")
def private() -> Iterator[LocalRuntime]:
    """A runtime of this module's own: what it logs and lists is only these tests' doing."""
    with LocalRuntime(pool_size=0) as runtime:
        yield runtime


def test_internet_request_without_allow_internet_gets_a_sandbox_without_network(
    private: LocalRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    options = private.connection_options()
    with caplog.at_level(logging.WARNING, logger="langchain_e2b.local"):
        made = [
            Sandbox.create(template="base", allow_internet_access=True, **options) for _ in range(2)
        ]
    try:
        for sandbox in made:
            names = "import socket; print(*sorted(n for _, n in socket.if_nameindex()))"
            assert sandbox.commands.run(f'python3 -c "{names}"').stdout.split() == ["lo"]
            assert sandbox.get_info().allow_internet_access is False
        told = [r for r in caplog.records if "--allow-internet" in r.getMessage()]
        assert len(told) == 1
    finally:
        for sandbox in made:
            sandbox.kill()


def test_list_is_newest_first_pages_and_filters_by_start_time(private: LocalRuntime) -> None:
    options = private.connection_options()
    tag = {"tag": f"order-{time.monotonic_ns()}"}
    made = []
    try:
        for _ in range(5):
            made.append(Sandbox.create(template="base", metadata=tag, **options))
        newest_first = [s.sandbox_id for s in reversed(made)]
        paginator = Sandbox.list(query=SandboxQuery(metadata=tag), limit=2, **options)
        pages = []
        while paginator.has_next:
            pages.append([info.sandbox_id for info in paginator.next_items()])
        assert [len(page) for page in pages] == [2, 2, 1]
        assert [sandbox_id for page in pages for sandbox_id in page] == newest_first
        # A sandbox created between pages neither repeats nor hides an older one.
        paginator = Sandbox.list(query=SandboxQuery(metadata=tag), limit=3, **options)
        first = [info.sandbox_id for info in paginator.next_items()]
        made.append(Sandbox.create(template="base", metadata=tag, **options))
        rest = [info.sandbox_id for info in paginator.next_items()]
        assert first + rest == newest_first
        assert not paginator.has_next

        third = made[2].get_info().started_at
        since = Sandbox.list(query=SandboxQuery(metadata=tag, started_after=third), **options)
        expected = [made[5].sandbox_id, *newest_first[:3]]
        assert [info.sandbox_id for info in since.next_items()] == expected
        oldest_first = Sandbox.list(query=SandboxQuery(metadata=tag), order="asc", **options)
        assert [info.sandbox_id for info in oldest_first.next_items()] == [
            s.sandbox_id for s in made
        ]
    finally:
        for sandbox in made:
            sandbox.kill()


def test_connect_extends_a_running_sandbox_but_never_shortens_it(private: LocalRuntime) -> None:
    options = private.connection_options()
    sandbox = Sandbox.create(template="base", timeout=600, **options)
    try:
        end = sandbox.get_info().end_at
        Sandbox.connect(sandbox.sandbox_id, timeout=30, **options)
        assert sandbox.get_info().end_at == end
        Sandbox.connect(sandbox.sandbox_id, timeout=3600, **options)
        assert (sandbox.get_info().end_at - end).total_seconds() > 2900
        # set_timeout is the way to shorten it, as on E2B.
        sandbox.set_timeout(30)
        assert sandbox.get_info().end_at < end
    finally:
        sandbox.kill()


def test_a_failed_create_tells_the_user_why(tmp_path: Path) -> None:
    with LocalRuntime(pool_size=0, data_dir=tmp_path / "data") as runtime:
        sandboxes = tmp_path / "data" / "sandboxes"
        sandboxes.rmdir()
        sandboxes.write_text("not a directory")  # the data directory was tampered with
        with pytest.raises(e2b.SandboxException) as info:
            Sandbox.create(template="base", **runtime.connection_options())
        message = str(info.value)
        assert "NotADirectoryError" in message
        assert str(sandboxes) in message


def test_generated_keys_have_e2b_shape_and_other_keys_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert re.fullmatch(r"e2b_[0-9a-f]{40}", LocalRuntime().api_key)
    with caplog.at_level(logging.WARNING, logger="langchain_e2b.local"):
        LocalRuntime(api_key="e2b_" + "ab" * 20)
        assert not caplog.records
        LocalRuntime(api_key="my-local-key")
    (record,) = caplog.records
    assert "client-side API key check" in record.getMessage()


def test_malformed_requests_keep_server_serving(e2b_connection: dict[str, Any]) -> None:
    base = e2b_connection["api_url"]
    key = {"X-API-KEY": e2b_connection["api_key"]}
    assert httpx.post(f"{base}/sandboxes", content=b"{nope", headers=key).status_code == 400
    assert httpx.get(f"{base}/sandboxes/missing", headers=key).status_code == 404
    assert httpx.get(f"{base}/v2/sandboxes/x/y/z", headers=key).status_code == 404
    gone = httpx.get(f"{base}/files", headers={"E2b-Sandbox-Id": "nope"})
    assert gone.status_code == 502
    assert gone.json()["message"] == "The sandbox was not found"
    sandbox = Sandbox.create(template="base", **e2b_connection)
    sandbox.kill()
