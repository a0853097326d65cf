"""Unauthenticated local clients: idle connections cannot starve the runtime.

Any local user can connect to the runtime's port. The attack: open thousands of TCP connections
and never send a request. Each runs against ``langchain-e2b local serve`` in a child process whose
descriptor limit starts at the common default soft limit of 1024, once with room to raise it (the
usual hard limit) and once without (hard limit 1024 too), so both the raised limit and the
connection cap are exercised.
"""

from __future__ import annotations

import contextlib
import errno
import re
import resource
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from e2b_code_interpreter import Sandbox

from langchain_e2b.local.connections import HEADER_TIMEOUT

IDLE_CONNECTIONS = 3000
START_TIMEOUT = 120.0


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    api_key: str
    output: list[str]
    """Everything the server printed so far."""

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port

    @property
    def options(self) -> dict[str, str]:
        return {"api_key": self.api_key, "api_url": self.url, "sandbox_url": self.url}


def _own_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


@contextlib.contextmanager
def _serve(nofile: tuple[int, int]) -> Iterator[Served]:
    api_key = "e2b_" + secrets.token_hex(20)
    data_dir = tempfile.mkdtemp(prefix="le2b-conn-")
    cmd = [sys.executable, "-m", "langchain_e2b", "local", "serve", "--pool", "0"]
    cmd += ["--api-key", api_key, "--data-dir", data_dir]

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lower_limit,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            url = match.group(1) if match else None
        assert url is not None, "the server did not start: " + "".join(seen)
        stdout = proc.stdout
        threading.Thread(target=lambda: [seen.append(line) for line in stdout], daemon=True).start()
        yield Served(proc, url, api_key, seen)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", data_dir], check=False, timeout=60)


def _open_idle(address: tuple[str, int], count: int) -> list[socket.socket]:
    """Open ``count`` connections that never send anything; wait (bounded) until connected."""
    socks: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code, code)
        socks.append(sock)
    poller = select.poll()
    waiting = {sock.fileno(): sock for sock in socks}
    for fd in waiting:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + 10
    while waiting and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            poller.unregister(fd)
            waiting.pop(fd, None)
    return socks


@pytest.mark.parametrize(
    "nofile",
    [(1024, 20_000), (1024, 1024)],
    ids=["soft-limit-1024", "hard-limit-1024"],
)
def test_idle_connections_leave_room_for_authenticated_work(nofile: tuple[int, int]) -> None:
    _own_descriptors(IDLE_CONNECTIONS + 512)
    with _serve(nofile) as served:
        idle = _open_idle(served.address, IDLE_CONNECTIONS)
        try:
            started = time.monotonic()
            sandbox = Sandbox.create(**served.options, request_timeout=30)
            try:
                result = sandbox.run_code("6 * 7", timeout=30, request_timeout=30)
                assert result.text == "42"
            finally:
                sandbox.kill(request_timeout=30)
            assert time.monotonic() - started < 90
            # The runtime itself never ran out of descriptors (asyncio would then stop accepting
            # for a second at a time).
            assert not [line for line in served.output if "Too many open files" in line]
        finally:
            for sock in idle:
                sock.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with _serve((1024, 20_000)) as served:
        yield served


def test_a_connection_that_sends_no_headers_is_closed(served: Served) -> None:
    with socket.create_connection(served.address, timeout=HEADER_TIMEOUT + 20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert sock.recv(1) == b""


def test_an_unauthenticated_answer_closes_the_connection(served: Served) -> None:
    with socket.create_connection(served.address, timeout=HEADER_TIMEOUT + 20) as sock:
        sock.sendall(b"GET /sandboxes HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 401")
        assert b'"code":401' in answer


def test_an_authenticated_connection_stays_open(served: Served) -> None:
    with socket.create_connection(served.address, timeout=HEADER_TIMEOUT + 20) as sock:
        request = f"GET /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: {served.api_key}\r\n\r\n"
        for _ in range(2):
            sock.sendall(request.encode())
            assert _read_response(sock).startswith(b"HTTP/1.1 200")


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and Content-Length bytes of body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before a full response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before a full response"
        body += chunk
    return head + b"\r\n\r\n" + body
