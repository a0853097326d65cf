"""The hop between the gateway and a sandbox's agent must not lose requests."""

from __future__ import annotations

import re
import socket
import time

import httpx
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime


def _get_ready(conn: socket.socket) -> bytes:
    """One keep-alive request on ``conn``: the response's status line and headers."""
    conn.sendall(b"GET /_ready HTTP/1.1\r\nHost: agent\r\n\r\n")
    conn.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length is not None
    while len(body) < int(length.group(1)):
        body += conn.recv(4096)
    return head


def test_agent_keeps_idle_connections_longer_than_the_gateway(runtime: LocalRuntime) -> None:
    # The gateway's pool reuses an idle connection to an agent for up to httpx's keep-alive
    # expiry. If the agent closed idle connections at the same moment, a request sent on one
    # just as the agent closed it would fail, and the SDK would see a 502 for code that never
    # ran (a warm-pool sandbox handed out about that long after it became ready hit this).
    sandbox = Sandbox.create(**runtime.connection_options())
    try:
        assert runtime.gateway is not None
        path = runtime.gateway._sock_dir / f"{sandbox.sandbox_id}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            assert _get_ready(conn).startswith(b"HTTP/1.1 200")
            time.sleep(httpx.Limits().keepalive_expiry + 1)
            assert _get_ready(conn).startswith(b"HTTP/1.1 200")
    finally:
        sandbox.kill()
