"""The data plane: requests for a sandbox, routed by ``E2b-Sandbox-Id`` to its jailed agent.

Requests go to the agent over its unix socket as plain HTTP/1.1 on asyncio streams, on
connections kept open between requests (a pool per sandbox, closed with it): a general HTTP
client cost more per request than the rest of the hop. The agent is ours and speaks uvicorn's
HTTP/1.1, so the client side needs only what uvicorn sends back: ``content-length``,
``chunked`` or a body that ends with the connection. Lengths are read strictly (digits only), so
even a misbehaving agent cannot make the gateway read without bound before it forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from langchain_e2b.local import _connect, _signature
from langchain_e2b.local._http import (
    AUTHENTICATED,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    iter_body,
    send_error,
    send_json,
    send_response,
    wait_disconnect,
)
from langchain_e2b.local.supervisor import Sandbox, Supervisor

_NOT_FOUND = "The sandbox was not found"
_BUFFERED_BODY = 1024 * 1024
# Request headers not passed on: the hop's own, the gateway's credentials, and the body's
# framing (the hop frames the body itself). ``expect`` is answered by the gateway's server.
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"host",
    b"expect",
    b"content-length",
    b"x-access-token",
    b"e2b-traffic-access-token",
    b"x-api-key",
}
# An idle connection to an agent is closed after this long, far below the agent's own idle
# limit (agent.AGENT_KEEP_ALIVE): the agent never closes one the gateway is about to reuse.
IDLE_EXPIRY = 60.0
# Idle connections kept per sandbox; more are closed when their requests end.
MAX_IDLE = 8
_READ_SIZE = 256 * 1024
_STREAM_TYPE = _connect.STREAM_CONTENT_TYPE.encode()
# Largest response head accepted from an agent.
_MAX_HEAD = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


class _AgentGone(Exception):
    """The connection to the agent broke or ended before the response did."""


class _Connection:
    """One HTTP/1.1 connection to an agent's socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.expiry: asyncio.TimerHandle | None = None

    def usable(self) -> bool:
        """Whether the agent has not closed it (an idle connection gets no data otherwise)."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        """Close at once; the agent sees the request's client go away."""
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        self.writer.transport.abort()


class _Pool:
    """Idle keep-alive connections to one sandbox's agent (closed when the sandbox ends)."""

    def __init__(self, sandbox: Sandbox, path: str) -> None:
        self.sandbox = sandbox
        self.path = path
        self.idle: list[_Connection] = []

    async def get(self) -> _Connection:
        """An idle connection that is still open, or a new one."""
        while self.idle:
            conn = self.idle.pop()
            if conn.expiry is not None:
                conn.expiry.cancel()
                conn.expiry = None
            if conn.usable():
                return conn
            conn.close()
        reader, writer = await asyncio.open_unix_connection(self.path, limit=_MAX_HEAD)
        return _Connection(reader, writer)

    def put(self, conn: _Connection) -> None:
        """Keep a connection whose response was read to the end, for the next request."""
        if len(self.idle) >= MAX_IDLE or not conn.usable():
            conn.close()
            return
        conn.expiry = asyncio.get_running_loop().call_later(IDLE_EXPIRY, self._expire, conn)
        self.idle.append(conn)

    def _expire(self, conn: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        conn.expiry = None
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def _pool(sandbox: Sandbox) -> _Pool:
    """The sandbox's pool; the supervisor closes it when the sandbox ends."""
    if not isinstance(sandbox.connections, _Pool):
        sandbox.connections = _Pool(sandbox, sandbox.socket_path)
    return sandbox.connections


async def handle(supervisor: Supervisor, scope: Scope, receive: Receive, send: Send) -> None:
    """Forward one request to the agent of the sandbox it names, streaming both ways."""
    sandbox_id = header(scope, "e2b-sandbox-id")
    sandbox = supervisor.sandboxes.get(sandbox_id or "")
    if sandbox is None and sandbox_id is None and _signature.is_signed(scope):
        # A signed file URL names no sandbox: it is for the one whose token made the signature.
        tokens = ((s.envd_token, s) for s in supervisor.sandboxes.values())
        sandbox = _signature.signer(scope, tokens)
        if sandbox is None:
            await send_error(send, 401, "invalid signature (or its sandbox is gone)")
            return
    if sandbox is None:
        if sandbox_id is None and scope["path"] == "/health":
            await send_response(send, 204)
            return
        await send_json(send, 502, {"sandboxId": sandbox_id, "message": _NOT_FOUND, "code": 502})
        return
    if not _token_ok(scope, sandbox):
        refused: str | None = "missing or wrong access token for this sandbox"
        if header(scope, "x-access-token") is None and _signature.is_signed(scope):
            refused = _signature.refusal(scope, sandbox.envd_token)
        if refused is not None:
            await send_error(send, 401, refused)
            return
    scope[AUTHENTICATED] = True
    if sandbox.paused_at is not None:
        # Its processes are frozen: a forwarded request would hang until it is resumed.
        paused = f"The sandbox {sandbox.sandbox_id} is paused: connect to it to resume it"
        await send_json(send, 502, {"sandboxId": sandbox_id, "message": paused, "code": 502})
        return
    await _forward(_pool(sandbox), scope, receive, send)


def _request_head(scope: Scope, framing: bytes) -> bytes:
    raw_path = scope.get("raw_path")
    if not isinstance(raw_path, bytes) or not raw_path.startswith(b"/"):
        raw_path = quote(scope["path"]).encode("latin-1")
    query = scope.get("query_string", b"")
    target = raw_path + b"?" + query if query else raw_path
    lines = [scope["method"].encode("latin-1") + b" " + target + b" HTTP/1.1\r\nhost: agent\r\n"]
    for name, value in scope["headers"]:
        if name.lower() not in _HOP_BY_HOP:
            lines.append(name + b": " + value + b"\r\n")
    lines.append(framing)
    lines.append(b"\r\n")
    return b"".join(lines)


async def _forward(pool: _Pool, scope: Scope, receive: Receive, send: Send) -> None:
    sandbox = pool.sandbox
    gone = {"sandboxId": sandbox.sandbox_id, "message": _NOT_FOUND, "code": 502}
    length = header(scope, "content-length")
    chunked = length is None and header(scope, "transfer-encoding") is not None
    body = b""
    streamed = False
    if length is not None and length.isdigit() and int(length) <= _BUFFERED_BODY:
        # Small bodies go in one piece with the head: one write for the whole request.
        try:
            body = b"".join([chunk async for chunk in iter_body(receive)])
        except ClientDisconnected:
            return
        framing = b"content-length: %d\r\n" % len(body) if body or length != "0" else b""
    elif length is not None and length != "0":
        streamed = True
        framing = b"content-length: " + length.encode("latin-1") + b"\r\n"
    elif chunked:
        streamed = True
        framing = b"transfer-encoding: chunked\r\n"
    else:
        framing = b""
    try:
        conn = await pool.get()
    except OSError:
        await send_json(send, 502, gone)
        return
    finished = False  # the whole response was read from the agent
    pooled = False
    disconnected = False

    async def watch_disconnect() -> None:
        nonlocal disconnected
        await wait_disconnect(receive)
        if not finished:
            # A client that goes away (the SDK's own timeout) must be seen by the agent as a
            # closed connection, which is how it knows to interrupt the running code.
            disconnected = True
            conn.close()

    watcher: asyncio.Task[None] | None = None
    try:
        writer = conn.writer
        writer.write(_request_head(scope, framing) + body)
        if streamed and not await _send_body(writer, receive, chunked=chunked):
            return  # the client went away mid-body: the agent sees the request cut short
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        watcher = asyncio.create_task(watch_disconnect())
        try:
            head = await _read_head(conn.reader, scope["method"])
        except _AgentGone:
            if not disconnected:
                await send_json(send, 502, gone)
            return
        await send({"type": "http.response.start", "status": head.status, "headers": head.headers})
        streaming = (b"content-type", _STREAM_TYPE) in head.headers
        frames = _connect.FrameTracker() if streaming else None
        try:
            async for chunk in _read_body(conn.reader, head):
                if frames is not None:
                    frames.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except _AgentGone:
            if disconnected:
                return
            if frames is None or not frames.between_messages:
                raise
            # The sandbox went away mid-stream (killed): end the stream the way E2B's proxy does.
            cut = (
                f"the connection to sandbox {sandbox.sandbox_id} ended before the stream completed"
            )
            end = _connect.end_stream(_connect.ConnectError("unavailable", cut))
            await send({"type": "http.response.body", "body": end, "more_body": False})
            return
        finished = not disconnected
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if finished and head.keep_alive and head.framing != "close":
            pool.put(conn)
            pooled = True
    finally:
        if watcher is not None:
            watcher.cancel()
        if not pooled:
            conn.close()


async def _send_body(writer: asyncio.StreamWriter, receive: Receive, *, chunked: bool) -> bool:
    """Stream the request body to the agent; False if the client went away first."""
    try:
        async for chunk in iter_body(receive):
            if chunked:
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                writer.write(chunk)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
    except ClientDisconnected:
        return False
    if chunked:
        writer.write(b"0\r\n\r\n")
    return True


class _Head:
    """A response's status line and headers, and how its body is delimited."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = headers
        # "length" (``length`` bytes), "chunked", "close" (until the agent closes) or "none".
        self.framing = "close"
        self.length = 0
        self.keep_alive = True


async def _read_head(reader: asyncio.StreamReader, method: str) -> _Head:
    """Read the response head (skipping informational responses)."""
    try:
        while True:
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw[:-4].split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            if not 100 <= status < 200:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
        raise _AgentGone from exc
    except (ValueError, IndexError) as exc:
        raise _AgentGone("the agent sent a malformed response") from exc
    head = _Head(status, [])
    length: int | None = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"transfer-encoding":
            # Chunked is the last coding when present; anything else ends with the connection.
            last = value.rsplit(b",", 1)[-1].strip().lower()
            head.framing = "chunked" if last == b"chunked" else "close"
        elif name == b"connection":
            head.keep_alive = head.keep_alive and value.lower() != b"close"
        elif name == b"content-length":
            if not _CONTENT_LENGTH.fullmatch(value):
                raise _AgentGone("the agent sent a malformed content-length")
            length = int(value)
        else:
            head.headers.append((name, value))
    if head.framing == "close" and length is not None:
        # A length is passed on only when it frames the body (never beside chunked framing,
        # which the client gets re-framed).
        head.framing, head.length = "length", length
        head.headers.append((b"content-length", b"%d" % length))
    if status in (204, 304):
        head.headers = [(n, v) for n, v in head.headers if n != b"content-length"]
    if method == "HEAD" or status in (204, 304):
        head.framing = "none"
    return head


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
    """Yield ``size`` bytes as they arrive."""
    while size:
        data = await reader.read(min(size, _READ_SIZE))
        if not data:
            raise _AgentGone("the agent closed the connection mid-response")
        size -= len(data)
        yield data


async def _read_body(reader: asyncio.StreamReader, head: _Head) -> AsyncIterator[bytes]:
    """Yield the response body as it arrives, without its chunked framing."""
    try:
        if head.framing == "length":
            async for data in _read_exactly(reader, head.length):
                yield data
        elif head.framing == "chunked":
            while True:
                line = await reader.readuntil(b"\r\n")
                digits = line[:-2].split(b";", 1)[0].strip()
                if not _CHUNK_SIZE.fullmatch(digits):
                    raise _AgentGone("the agent sent a malformed chunk size")
                size = int(digits, 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers: none are passed on
                    return
                async for data in _read_exactly(reader, size):
                    yield data
                if await reader.readexactly(2) != b"\r\n":
                    raise _AgentGone("the agent sent a malformed chunk")
        elif head.framing == "close":
            while data := await reader.read(_READ_SIZE):
                yield data
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
        raise _AgentGone from exc
    except ValueError as exc:
        raise _AgentGone("the agent sent a malformed chunk size") from exc


def _token_ok(scope: Scope, sandbox: Sandbox) -> bool:
    for name, expected in (
        ("x-access-token", sandbox.envd_token),
        ("e2b-traffic-access-token", sandbox.traffic_token),
    ):
        given = header(scope, name)
        if given is not None and hmac.compare_digest(given.encode(), expected.encode()):
            return True
    return False
