"""Small ASGI helpers shared by the gateway and the in-jail agent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Headers = Iterable[tuple[str, str]]

# Scope key set once a request has shown a valid API key or sandbox token.
AUTHENTICATED = "langchain_e2b.authenticated"


class ClientDisconnected(Exception):
    """The HTTP client went away before the request body was read."""


def header(scope: Scope, name: str) -> str | None:
    """Return the first value of a request header, or None (case-insensitive)."""
    key = name.lower().encode("latin-1")
    for k, v in scope.get("headers", ()):
        if k.lower() == key:
            return bytes(v).decode("latin-1")
    return None


def query(scope: Scope) -> dict[str, str]:
    """Return the query string as a dict of first values."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


async def iter_body(receive: Receive) -> AsyncIterator[bytes]:
    """Yield the request body chunk by chunk as it arrives."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def wait_disconnect(receive: Receive, disconnected: asyncio.Event | None = None) -> None:
    """Return once the client has gone away (setting ``disconnected`` if given).

    Call it only after the request body has been read: it consumes ``receive``.
    """
    while (await receive())["type"] != "http.disconnect":
        pass
    if disconnected is not None:
        disconnected.set()


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """Read the whole request body; raise ValueError past ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in iter_body(receive):
        size += len(chunk)
        if limit is not None and size > limit:
            raise ValueError(f"request body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def read_json(receive: Receive, limit: int | None = 64 * 1024 * 1024) -> Any:
    """Read and decode a JSON request body; an empty body decodes to ``{}``."""
    body = await read_body(receive, limit)
    if not body.strip():
        return {}
    return json.loads(body)


def _raw_headers(content_type: str | None, headers: Headers) -> list[tuple[bytes, bytes]]:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if content_type is not None:
        raw.append((b"content-type", content_type.encode("latin-1")))
    return raw


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: Headers = (),
) -> None:
    """Send a complete response in one message."""
    raw = _raw_headers(content_type if body or status not in (204, 304) else None, headers)
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Send, status: int, obj: Any, *, headers: Headers = ()) -> None:
    """Send ``obj`` as a JSON response."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    await send_response(send, status, body, headers=headers)


async def send_error(send: Send, status: int, message: str) -> None:
    """Send an E2B-style error body: ``{"code": status, "message": message}``."""
    await send_json(send, status, {"code": status, "message": message})


async def start_stream(
    send: Send, status: int, content_type: str, *, headers: Headers = ()
) -> None:
    """Begin a streamed (chunked) response; follow with :func:`send_chunk`."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _raw_headers(content_type, headers),
        }
    )


async def send_chunk(send: Send, data: bytes, *, more: bool = True) -> None:
    """Send one piece of a streamed response; ``more=False`` ends it."""
    await send({"type": "http.response.body", "body": data, "more_body": more})
