"""The data plane: requests for a sandbox, routed by ``E2b-Sandbox-Id`` to its jailed agent."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from typing import Any

import httpx

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
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in scope["headers"]
        if k.decode("latin-1").lower() not in _HOP_BY_HOP
    ]
    raw_query = scope.get("query_string", b"").decode("latin-1")
    url = scope["path"] + (f"?{raw_query}" if raw_query else "")
    body_done = asyncio.Event()

    async def body() -> Any:
        with contextlib.suppress(ClientDisconnected):
            async for chunk in iter_body(receive):
                yield chunk
        body_done.set()

    length = header(scope, "content-length")
    content: Any = None
    if length is not None and length.isdigit() and int(length) <= _BUFFERED_BODY:
        # Small bodies go in one piece: a streamed body costs a round of extra writes.
        content = b"".join([chunk async for chunk in body()])
    elif length not in (None, "0") or header(scope, "transfer-encoding"):
        content = body()
    else:
        body_done.set()
    request = sandbox.client.build_request(scope["method"], url, headers=headers, content=content)
    try:
        response = await sandbox.client.send(request, stream=True)
    except httpx.TransportError:
        await send_json(send, 502, {"sandboxId": sandbox_id, "message": _NOT_FOUND, "code": 502})
        return

    async def watch_disconnect() -> None:
        await body_done.wait()
        await wait_disconnect(receive)

    async def pump() -> None:
        out_headers = [
            (k.lower(), v)
            for k, v in response.headers.raw
            if k.lower() not in (b"connection", b"transfer-encoding")
        ]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": out_headers}
        )
        streaming = response.headers.get("content-type") == _connect.STREAM_CONTENT_TYPE
        frames = _connect.FrameTracker() if streaming else None
        try:
            async for chunk in response.aiter_raw():
                if frames is not None:
                    frames.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.TransportError:
            if frames is None or not frames.between_messages:
                raise
            # The sandbox went away mid-stream (killed): end the stream the way E2B's proxy does.
            gone = (
                f"the connection to sandbox {sandbox.sandbox_id} ended before the stream completed"
            )
            body = _connect.end_stream(_connect.ConnectError("unavailable", gone))
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
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


def _token_ok(scope: Scope, sandbox: Sandbox) -> bool:
    for name, expected in (
        ("x-access-token", sandbox.envd_token),
        ("e2b-traffic-access-token", sandbox.traffic_token),
    ):
        given = header(scope, name)
        if given is not None and hmac.compare_digest(given.encode(), expected.encode()):
            return True
    return False
