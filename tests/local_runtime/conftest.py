"""Fixtures for the in-sandbox agent, run unjailed on a unix socket in a temporary directory."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class AgentProcess:
    """A running agent: its socket, its home directory and its process."""

    socket_path: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, timeout: float = 30) -> AgentClient:
        return AgentClient(self.socket_path, timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def start_agent(
    base: Path, *, template: str = "base", env: dict[str, str] | None = None
) -> AgentProcess:
    """Start ``python -m langchain_e2b.local.agent`` the way the gateway does (without a jail)."""
    home = base / "home"
    home.mkdir(parents=True)
    # Unix socket paths are limited to about 100 bytes: keep this one short.
    sock_dir = tempfile.mkdtemp(prefix="ag")
    sock_path = os.path.join(sock_dir, "s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    base_env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "USER": "user",
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    config = {
        "template": template,
        "home": str(home),
        "user": "user",
        "env": base_env,
        "listen_fd": listener.fileno(),
    }
    log = base / "agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "langchain_e2b.local.agent"],
            pass_fds=(listener.fileno(),),
            env={
                "LANGCHAIN_E2B_AGENT": json.dumps(config),
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "AGENT_SECRET": "agent-only",
            },
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(home),
        )
    listener.close()
    agent = AgentProcess(sock_path, home, proc, log)
    deadline = time.monotonic() + 120
    transport = httpx.HTTPTransport(uds=sock_path)
    with httpx.Client(transport=transport, base_url="http://agent") as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited: {log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/_ready").status_code == 200:
                    return agent
            time.sleep(0.02)
    agent.stop()
    raise RuntimeError(f"agent did not become ready: {log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def envd_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One base-template agent shared by a test module."""
    running = start_agent(tmp_path_factory.mktemp("agent"))
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(os.path.dirname(running.socket_path), ignore_errors=True)


@pytest.fixture
async def envd_client(envd_agent: AgentProcess) -> AsyncIterator[AgentClient]:
    """A Connect/HTTP client of the module's agent."""
    async with envd_agent.client() as c:
        yield c


def envelope(message: dict[str, Any], flags: int = 0) -> bytes:
    body = json.dumps(message).encode()
    return struct.pack(">BI", flags, len(body)) + body


def parse_envelopes(data: bytes) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    while data:
        flags, size = struct.unpack_from(">BI", data)
        out.append((flags, json.loads(data[5 : 5 + size])))
        data = data[5 + size :]
    return out


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class AgentClient:
    """Speaks Connect JSON to the agent exactly as the E2B SDK does."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path),
            base_url="http://agent",
            timeout=timeout,
            headers={"E2b-Sandbox-Id": "test", "E2b-Sandbox-Port": "49983"},
        )

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def unary(self, method: str, body: Any) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await self.http.post(
            f"/{method}",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "Connect-Protocol-Version": "1",
                "Connect-Timeout-Ms": "60000",
            },
        )
        return response.status_code, response.json()

    def stream(
        self, method: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        """Open a server stream; use as ``async with client.stream(...) as response``."""
        return self.http.stream(
            "POST",
            f"/{method}",
            content=envelope(body),
            headers={
                "Content-Type": "application/connect+json",
                "Connect-Protocol-Version": "1",
                **(headers or {}),
            },
        )

    async def collect(
        self, method: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[list[Any], Any]:
        """Run a server stream to its end: (messages, end-stream body)."""
        async with self.stream(method, body, headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/connect+json"
            data = await response.aread()
        frames = parse_envelopes(data)
        assert frames, "empty stream"
        assert frames[-1][0] == 2, "the stream must end with an end-stream envelope"
        assert all(flags == 0 for flags, _ in frames[:-1])
        return [m for _, m in frames[:-1]], frames[-1][1]

    async def run(
        self, cmd: str, *, envs: dict[str, str] | None = None, cwd: str | None = None, **kw: Any
    ) -> tuple[bytes, bytes, dict[str, Any], list[Any], Any]:
        """Run a command as ``commands.run`` does: stdout, stderr, end event, messages, trailer."""
        process: dict[str, Any] = {"cmd": "/bin/bash", "args": ["-l", "-c", cmd]}
        if envs is not None:
            process["envs"] = envs
        if cwd is not None:
            process["cwd"] = cwd
        messages, end_stream = await self.collect(
            "process.Process/Start", {"process": process, "stdin": False}, **kw
        )
        out, err, end = b"", b"", {}
        for m in messages:
            event = m["event"]
            if "data" in event:
                out += base64.b64decode(event["data"].get("stdout", ""))
                err += base64.b64decode(event["data"].get("stderr", ""))
            if "end" in event:
                end = event["end"]
        return out, err, end, messages, end_stream
