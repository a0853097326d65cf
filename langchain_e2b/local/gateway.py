"""The gateway: E2B's control plane and proxy for the local runtime.

It owns the sandbox registry, lifetimes, the warm pool and authentication, and routes data-plane
requests to the agent inside each sandbox's jail by the ``E2b-Sandbox-Id`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hmac
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx

from langchain_e2b.local import jail
from langchain_e2b.local._http import (
    Receive,
    Scope,
    Send,
    header,
    query,
    read_json,
    send_error,
    send_json,
    send_response,
)

log = logging.getLogger("langchain_e2b.local")
_LIBC = ctypes.CDLL(None)

ENVD_VERSION = "0.6.13"
ENVD_PORT = "49983"
JUPYTER_PORT = "49999"
TEMPLATES = ("base", "code-interpreter-v1")
# The SDK's code-interpreter template is named differently by some SDK versions.
TEMPLATE_ALIASES = {"code-interpreter": "code-interpreter-v1"}
MAX_TIMEOUT = 86_400
DEFAULT_TIMEOUT = 300
READY_TIMEOUT = 120.0
POOL_REFILL_DELAY = 1.0
_NOT_FOUND = "The sandbox was not found"
BWRAP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_BUFFERED_BODY = 1024 * 1024
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "x-access-token",
    "e2b-traffic-access-token",
    "x-api-key",
}


class ApiError(Exception):
    """An error answered to the SDK as ``{"code", "message"}`` with that HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Sandbox:
    """One running sandbox: its jail, its agent connection and its lease."""

    sandbox_id: str
    template: str
    network: bool
    proc: subprocess.Popen[bytes]
    directory: Path
    client: httpx.AsyncClient
    envd_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    traffic_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    metadata: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    end_at: float = 0.0

    def describe(self, *, tokens: bool) -> dict[str, Any]:
        """The sandbox as the control plane reports it."""
        info: dict[str, Any] = {
            "templateID": self.template,
            "alias": self.template,
            "sandboxID": self.sandbox_id,
            "clientID": "local",
            "envdVersion": ENVD_VERSION,
            "domain": None,
        }
        if tokens:
            info["envdAccessToken"] = self.envd_token
            info["trafficAccessToken"] = self.traffic_token
        return info

    def listed(self) -> dict[str, Any]:
        """The sandbox as list and get_info report it."""
        return {
            **self.describe(tokens=False),
            "startedAt": _rfc3339(self.started_at),
            "endAt": _rfc3339(self.end_at),
            "cpuCount": os.cpu_count() or 1,
            "memoryMB": 0,
            "diskSizeMB": 0,
            "state": "running",
            "metadata": self.metadata,
            "allowInternetAccess": self.network,
        }


class Gateway:
    """ASGI application serving the E2B control plane and proxying the data plane."""

    def __init__(
        self,
        *,
        api_key: str,
        data_dir: Path,
        isolation: bool = True,
        allow_internet: bool = False,
        pool_size: int = 2,
        limits: jail.Limits | None = None,
    ) -> None:
        self.api_key = api_key
        self.data_dir = data_dir
        self.isolation = isolation
        self.allow_internet = allow_internet
        self.pool_size = pool_size
        self.limits = limits or jail.Limits()
        self.sandboxes: dict[str, Sandbox] = {}
        self._pool: deque[Sandbox] = deque()
        self._pool_task: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._bwrap = ""
        self._layout: jail.PythonLayout | None = None
        self._binds: list[tuple[str, str]] = []
        self._staged: list[tuple[str, str]] = []
        self._closing = False
        # Jails run as other host uids: what bubblewrap binds from must sit where they can
        # traverse (data_dir may be under a private directory), and unix socket paths are
        # limited to about 100 bytes. Both live in this short, world-traversable directory.
        self._run_dir = Path(tempfile.mkdtemp(prefix="le2b-"))
        self._run_dir.chmod(0o711)
        self._sock_dir = self._run_dir / "sock"
        self._sock_dir.mkdir(mode=0o700)

    @property
    def pooled(self) -> int:
        """Number of warm sandboxes ready to hand out."""
        return len(self._pool)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the jail layout, start the expiry reaper and fill the warm pool."""
        (self.data_dir / "sandboxes").mkdir(parents=True, exist_ok=True)
        if self.isolation:
            self._bwrap = jail.check_isolation()
            self._layout = jail.prepare_python(self._run_dir)
            identity = jail.write_identity_files(self._run_dir)
            self._staged, self._binds = jail.stage_binds(
                self._layout, identity, self._run_dir / "stage"
            )
        self._reaper = asyncio.create_task(self._reap_expired())
        self._refill_pool()

    async def close(self) -> None:
        """Kill every sandbox (pooled ones too) and stop background tasks."""
        self._closing = True
        for task in (self._reaper, self._pool_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        victims = list(self.sandboxes.values()) + list(self._pool)
        self.sandboxes.clear()
        self._pool.clear()
        await asyncio.gather(*(self._destroy(s) for s in victims), return_exceptions=True)
        shutil.rmtree(self._run_dir, ignore_errors=True)

    def _refill_pool(self) -> None:
        if self._closing or self.pool_size <= 0:
            return
        if self._pool_task is None or self._pool_task.done():
            self._pool_task = asyncio.create_task(self._fill_pool())

    async def _fill_pool(self) -> None:
        while not self._closing and len(self._pool) < self.pool_size:
            try:
                sandbox = await self._spawn("code-interpreter-v1", network=False)
            except Exception:
                if not self._closing:
                    log.exception("could not start a pooled sandbox")
                return
            if self._closing:
                await self._destroy(sandbox)
                return
            self._pool.append(sandbox)

    async def _reap_expired(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            for sandbox in list(self.sandboxes.values()):
                if sandbox.end_at <= now or sandbox.proc.poll() is not None:
                    self.sandboxes.pop(sandbox.sandbox_id, None)
                    await self._destroy(sandbox)

    # -- sandboxes -----------------------------------------------------------------------------

    async def _spawn(self, template: str, *, network: bool) -> Sandbox:
        sandbox_id = "i" + secrets.token_hex(10)
        directory = self.data_dir / "sandboxes" / sandbox_id
        directory.mkdir(parents=True)
        sock_path = self._sock_dir / f"{sandbox_id}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(sock_path))
            listener.listen(128)
            proc = self._start_agent(template, network, listener.fileno(), directory)
        except BaseException:
            listener.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        listener.close()
        transport = httpx.AsyncHTTPTransport(uds=str(sock_path))
        client = httpx.AsyncClient(
            transport=transport, base_url="http://agent", timeout=httpx.Timeout(None)
        )
        sandbox = Sandbox(sandbox_id, template, network, proc, directory, client)
        try:
            await self._wait_ready(sandbox)
        except BaseException:
            await self._destroy(sandbox)
            raise
        return sandbox

    def _start_agent(
        self, template: str, network: bool, fd: int, directory: Path
    ) -> subprocess.Popen[bytes]:
        log_file = (directory / "agent.log").open("wb")
        try:
            if self.isolation:
                assert self._layout is not None
                config = self._agent_config(template, jail.JAIL_HOME, fd, self._layout)
                cmd = jail.bwrap_command(
                    self._bwrap,
                    layout=self._layout,
                    binds=self._binds,
                    limits=self.limits,
                    network=network,
                    agent_config=config,
                )
                uid = jail.next_host_uid()
                limits, staged = self.limits, self._staged
                return subprocess.Popen(
                    cmd,
                    pass_fds=(fd,),
                    cwd="/",
                    # bubblewrap stays in the jail as its pid 1, whose environment the sandbox
                    # can read in /proc/1/environ: it must not be the host's (API keys).
                    env=BWRAP_ENV,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=lambda: jail.enter_jail_user(uid, staged, limits),
                )
            home = directory / "home"
            home.mkdir()
            layout = jail.PythonLayout(binds=(), python=sys.executable, env={})
            config = self._agent_config(template, str(home), fd, layout)
            env = {
                "LANGCHAIN_E2B_AGENT": config,
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(home),
            }
            return subprocess.Popen(
                jail.agent_command(sys.executable, jail.PACKAGE_DIR),
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(home),
                env=env,
            )
        finally:
            log_file.close()

    def _agent_config(self, template: str, home: str, fd: int, layout: jail.PythonLayout) -> str:
        env = jail.user_env(layout, home)
        if not self.isolation:
            env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        return json.dumps(
            {
                "template": template,
                "home": home,
                "user": jail.JAIL_USER,
                "env": env,
                "listen_fd": fd,
            }
        )

    async def _wait_ready(self, sandbox: Sandbox) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        delay = 0.005
        while time.monotonic() < deadline:
            if sandbox.proc.poll() is not None:
                raise ApiError(500, f"the sandbox failed to start: {self._agent_log(sandbox)}")
            with contextlib.suppress(httpx.TransportError):
                response = await sandbox.client.get("/_ready")
                if response.status_code == 200:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise ApiError(500, f"the sandbox did not become ready: {self._agent_log(sandbox)}")

    @staticmethod
    def _agent_log(sandbox: Sandbox) -> str:
        try:
            text = (sandbox.directory / "agent.log").read_text(errors="replace").strip()
        except OSError:
            return "no agent log"
        return text[-2000:] or "the agent printed nothing"

    async def _destroy(self, sandbox: Sandbox) -> None:
        if not self.isolation:
            # Unjailed, there is no PID namespace to end: the agent kills its own process
            # groups on SIGTERM.
            sandbox.proc.terminate()
            await _reap(sandbox.proc, 2)
        jail.kill_tree(sandbox.proc)
        await _reap(sandbox.proc, 10)
        if not self.sandboxes:
            _release_memory()
        with contextlib.suppress(Exception):
            await sandbox.client.aclose()
        shutil.rmtree(sandbox.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self._sock_dir / f"{sandbox.sandbox_id}.sock").unlink()

    async def create_sandbox(
        self,
        template: str,
        *,
        timeout: int = DEFAULT_TIMEOUT,
        metadata: dict[str, str] | None = None,
        env_vars: dict[str, str] | None = None,
        network: bool | None = None,
    ) -> Sandbox:
        """Create (or take from the warm pool) a running sandbox."""
        template = TEMPLATE_ALIASES.get(template, template)
        if template not in TEMPLATES:
            raise ApiError(
                400,
                f"template '{template}' is not available in the local runtime; "
                f"use one of: {', '.join(TEMPLATES)}",
            )
        if network and not self.allow_internet:
            raise ApiError(
                403,
                "internet access is disabled in this local runtime; start it with "
                "--allow-internet (or LocalRuntime(allow_internet=True)) to allow it",
            )
        wants_net = self.allow_internet if network is None else network
        sandbox = None
        if template == "code-interpreter-v1" and not wants_net:
            while self._pool and sandbox is None:
                candidate = self._pool.popleft()
                if candidate.proc.poll() is None:
                    sandbox = candidate
                else:
                    await self._destroy(candidate)
            # Starting a kernel takes about a CPU-second; doing it right away would slow the
            # first calls of the sandbox just handed out, which is what the pool is for.
            asyncio.get_running_loop().call_later(POOL_REFILL_DELAY, self._refill_pool)
        if sandbox is None:
            sandbox = await self._spawn(template, network=wants_net)
        if env_vars:
            try:
                response = await sandbox.client.post("/_init", json={"envVars": env_vars})
                response.raise_for_status()
            except Exception as exc:
                await self._destroy(sandbox)
                raise ApiError(500, f"could not set the sandbox's environment: {exc}") from exc
        sandbox.started_at = time.time()
        sandbox.metadata = dict(metadata or {})
        sandbox.end_at = sandbox.started_at + timeout
        self.sandboxes[sandbox.sandbox_id] = sandbox
        return sandbox

    async def kill_sandbox(self, sandbox_id: str) -> bool:
        """Kill a sandbox; False if there is no such sandbox."""
        sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return False
        await self._destroy(sandbox)
        return True

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request: control plane by path, data plane by sandbox id."""
        if scope["type"] == "lifespan":
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path.startswith(("/sandboxes", "/v2/sandboxes")):
                await self._control(scope, receive, send)
            else:
                await self._proxy(scope, receive, send)
        except ApiError as exc:
            await send_error(send, exc.status, exc.message)
        except json.JSONDecodeError as exc:
            await send_error(send, 400, f"request body is not valid JSON: {exc}")

    def _check_api_key(self, scope: Scope) -> None:
        given = header(scope, "x-api-key") or ""
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise ApiError(401, "Invalid API key: pass the key this local runtime printed")

    def _get(self, sandbox_id: str) -> Sandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise ApiError(404, f"sandbox '{sandbox_id}' not found")
        return sandbox

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._check_api_key(scope)
        method: str = scope["method"]
        parts = [p for p in scope["path"].split("/") if p]
        if parts[0] == "v2":
            parts = parts[1:]
        # parts[0] == "sandboxes"
        if len(parts) == 1 and method == "POST":
            body = await read_json(receive)
            await self._create(body, send)
        elif len(parts) == 1 and method == "GET":
            await self._list(scope, send)
        elif len(parts) == 2 and method == "GET":
            await send_json(send, 200, self._detail(self._get(parts[1])))
        elif len(parts) == 2 and method == "DELETE":
            if not await self.kill_sandbox(parts[1]):
                raise ApiError(404, f"sandbox '{parts[1]}' not found")
            await send_response(send, 204)
        elif len(parts) == 3 and method == "POST" and parts[2] in ("connect", "resume"):
            body = await read_json(receive)
            sandbox = self._get(parts[1])
            if "timeout" in body:
                sandbox.end_at = time.time() + self._timeout(body["timeout"])
            await send_json(send, 200, sandbox.describe(tokens=True))
        elif len(parts) == 3 and method == "POST" and parts[2] == "timeout":
            body = await read_json(receive)
            sandbox = self._get(parts[1])
            sandbox.end_at = time.time() + self._timeout(body.get("timeout"))
            await send_response(send, 204)
        elif len(parts) == 3 and method == "GET" and parts[2] == "metrics":
            self._get(parts[1])
            await send_json(send, 200, [])
        elif len(parts) == 3 and method == "POST" and parts[2] == "pause":
            self._get(parts[1])
            raise ApiError(
                501, "the local runtime cannot pause sandboxes; kill it, or let it time out"
            )
        else:
            raise ApiError(404, f"unknown route: {method} {scope['path']}")

    @staticmethod
    def _timeout(value: Any) -> int:
        if value is None:
            return DEFAULT_TIMEOUT
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMEOUT:
            raise ApiError(
                400, f"timeout must be a whole number of seconds from 0 to {MAX_TIMEOUT}"
            )
        return value

    async def _create(self, body: dict[str, Any], send: Send) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("templateID"), str):
            raise ApiError(400, "templateID is required")
        metadata = body.get("metadata") or {}
        env_vars = body.get("envVars") or {}
        if not isinstance(metadata, dict) or not isinstance(env_vars, dict):
            raise ApiError(400, "metadata and envVars must be objects of strings")
        network = body.get("allow_internet_access")
        sandbox = await self.create_sandbox(
            body["templateID"],
            timeout=self._timeout(body.get("timeout")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            env_vars={str(k): str(v) for k, v in env_vars.items()},
            network=network if isinstance(network, bool) else None,
        )
        await send_json(send, 201, sandbox.describe(tokens=True))

    def _detail(self, sandbox: Sandbox) -> dict[str, Any]:
        return {**sandbox.listed(), "envdAccessToken": sandbox.envd_token}

    async def _list(self, scope: Scope, send: Send) -> None:
        params = query(scope)
        sandboxes = sorted(self.sandboxes.values(), key=lambda s: (s.started_at, s.sandbox_id))
        states = {s for s in params.get("state", "running").split(",") if s}
        if "running" not in states:
            sandboxes = []
        if params.get("order") == "desc":
            sandboxes.reverse()
        if params.get("template"):
            sandboxes = [s for s in sandboxes if s.template == params["template"]]
        wanted = _decode_metadata(params.get("metadata", ""))
        sandboxes = [s for s in sandboxes if all(s.metadata.get(k) == v for k, v in wanted.items())]
        start = int(params["nextToken"]) if params.get("nextToken", "").isdigit() else 0
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else len(sandboxes)
        page = sandboxes[start : start + max(limit, 1)] if sandboxes else []
        headers: list[tuple[str, str]] = []
        if start + len(page) < len(sandboxes):
            headers.append(("x-next-token", str(start + len(page))))
        await send_json(send, 200, [s.listed() for s in page], headers=headers)

    # -- data plane ----------------------------------------------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox_id = header(scope, "e2b-sandbox-id")
        sandbox = self.sandboxes.get(sandbox_id or "")
        if sandbox is None:
            if sandbox_id is None and scope["path"] == "/health":
                await send_response(send, 204)
                return
            await send_json(
                send, 502, {"sandboxId": sandbox_id, "message": _NOT_FOUND, "code": 502}
            )
            return
        if not self._data_token_ok(scope, sandbox):
            await send_error(send, 401, "missing or wrong access token for this sandbox")
            return
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        url = scope["path"] + (f"?{raw_query}" if raw_query else "")
        body_done = asyncio.Event()

        async def body() -> Any:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    body_done.set()
                    return
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    body_done.set()
                    return

        length = header(scope, "content-length")
        content: Any = None
        if length is not None and length.isdigit() and int(length) <= _BUFFERED_BODY:
            # Small bodies go in one piece: a streamed body costs a round of extra writes.
            content = b"".join([chunk async for chunk in body()])
        elif length not in (None, "0") or header(scope, "transfer-encoding"):
            content = body()
        else:
            body_done.set()
        request = sandbox.client.build_request(
            scope["method"], url, headers=headers, content=content
        )
        try:
            response = await sandbox.client.send(request, stream=True)
        except httpx.TransportError:
            await send_json(
                send, 502, {"sandboxId": sandbox_id, "message": _NOT_FOUND, "code": 502}
            )
            return

        async def watch_disconnect() -> None:
            await body_done.wait()
            while (await receive())["type"] != "http.disconnect":
                pass

        async def pump() -> None:
            out_headers = [
                (k.lower(), v)
                for k, v in response.headers.raw
                if k.lower() not in (b"connection", b"transfer-encoding")
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": out_headers,
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        # A client that goes away (the SDK's own timeout) must be seen by the agent as a
        # closed connection, which is how it knows to interrupt the running code.
        tasks = [asyncio.create_task(pump()), asyncio.create_task(watch_disconnect())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, httpx.TransportError, OSError):
                    await task
            await response.aclose()

    def _data_token_ok(self, scope: Scope, sandbox: Sandbox) -> bool:
        for name, expected in (
            ("x-access-token", sandbox.envd_token),
            ("e2b-traffic-access-token", sandbox.traffic_token),
        ):
            given = header(scope, name)
            if given is not None and hmac.compare_digest(given.encode(), expected.encode()):
                return True
        return False


def _release_memory() -> None:
    """Hand freed heap pages back to the OS once no sandbox is left.

    After a burst of sessions, glibc keeps the freed buffers of their streams; without this the
    runtime's resident memory stays at its high-water mark instead of returning to its baseline.
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


async def _reap(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait for ``proc`` to exit without a worker thread (this also runs at interpreter exit)."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a pid
        await asyncio.sleep(0.005)


def _decode_metadata(raw: str) -> dict[str, str]:
    """Decode the SDK's doubly-encoded metadata filter (see the protocol reference)."""
    if not raw:
        return {}
    return {unquote(k): unquote(v[0]) for k, v in parse_qs(raw, keep_blank_values=True).items()}
