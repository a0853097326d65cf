"""Connect protocol (JSON codec) for the agent: messages, 5-byte envelopes, end-stream, errors.

The ``e2b`` SDK ships generated Connect servers and typed messages for envd's services
(``e2b.envd.process.process_connect``, ``e2b.envd.filesystem.filesystem_connect``, over
``connectrpc`` and ``protobuf``). The agent does not use them because of what they cost every
sandbox at rest: importing them made the idle code-interpreter sandbox's resident memory grow from
67 MB to 94 MB (``benchmarks/bench_runtime.py``, pages counted once), and even importing only the
generated modules, skipping the SDK's package ``__init__``, added 14.6 MB RSS (6.4 MB USS) to the
agent, against a budget of 2 MB. The subset of Connect that envd speaks (JSON messages, unary
calls, server and client streams) fits in this module.
"""

from __future__ import annotations

import errno
import json
import struct
from collections.abc import AsyncIterator, Mapping
from typing import Any

from langchain_e2b.local._http import Receive, Scope, Send, header, iter_body

UNARY_CONTENT_TYPE = "application/json"
STREAM_CONTENT_TYPE = "application/connect+json"

# Largest single message we accept; stdin chunks and paths are small, this only stops abuse.
MAX_MESSAGE = 16 * 1024 * 1024

_END_STREAM = 0x02
_COMPRESSED = 0x01

# Connect's HTTP status for each error code (unary responses carry it as the status).
HTTP_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


class ConnectError(Exception):
    """An RPC failure, sent to the client as a Connect error with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, str]:
        """The error as Connect's JSON error object."""
        return {"code": self.code, "message": self.message}


def from_os_error(exc: OSError, path: str | None = None) -> ConnectError:
    """Map a filesystem error onto the Connect code the SDK turns into the right exception."""
    where = f"{path}: " if path else ""
    text = exc.strerror or str(exc)
    code = {
        errno.ENOENT: "not_found",
        errno.EEXIST: "already_exists",
        errno.ENOTEMPTY: "failed_precondition",
        errno.EACCES: "permission_denied",
        errno.EPERM: "permission_denied",
        errno.ENOTDIR: "invalid_argument",
        errno.EISDIR: "invalid_argument",
        errno.EINVAL: "invalid_argument",
        errno.ENAMETOOLONG: "invalid_argument",
        errno.ELOOP: "invalid_argument",
        errno.EXDEV: "invalid_argument",
        errno.ENOSPC: "resource_exhausted",
        errno.EDQUOT: "resource_exhausted",
    }.get(exc.errno or 0, "internal")
    return ConnectError(code, f"{where}{text}")


def field(message: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Read a field by its JSON name, accepting the proto (snake_case) name too."""
    if name in message:
        return message[name]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return message.get(snake, default)


def decode(data: bytes) -> dict[str, Any]:
    """Decode one JSON message; anything but a JSON object is an ``invalid_argument``."""
    try:
        message = json.loads(data) if data.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConnectError("invalid_argument", f"request is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ConnectError("invalid_argument", "request must be a JSON object")
    return message


def encode(message: Mapping[str, Any]) -> bytes:
    """Encode one JSON message compactly."""
    return json.dumps(message, separators=(",", ":")).encode()


def envelope(message: Mapping[str, Any], flags: int = 0) -> bytes:
    """Frame one message: a flags byte, a big-endian uint32 length, then the JSON."""
    body = encode(message)
    return struct.pack(">BI", flags, len(body)) + body


def end_stream(error: ConnectError | None = None) -> bytes:
    """The end-stream envelope that closes every streaming response."""
    return envelope({"error": error.to_json()} if error else {}, _END_STREAM)


def timeout_ms(scope: Scope) -> int | None:
    """The ``Connect-Timeout-Ms`` header as an int (None when absent or invalid)."""
    raw = header(scope, "connect-timeout-ms")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def _check_content_type(scope: Scope, expected: str) -> None:
    given = (header(scope, "content-type") or "").split(";")[0].strip().lower()
    if given != expected:
        raise ConnectError(
            "invalid_argument", f"content type {given or 'none'!r} is not supported; use {expected}"
        )


async def read_unary(scope: Scope, receive: Receive) -> dict[str, Any]:
    """Read and decode a unary request."""
    _check_content_type(scope, UNARY_CONTENT_TYPE)
    body = bytearray()
    async for chunk in iter_body(receive):
        body += chunk
        if len(body) > MAX_MESSAGE:
            raise ConnectError("resource_exhausted", "request message is too large")
    return decode(bytes(body))


async def send_unary(send: Send, message: Mapping[str, Any]) -> None:
    """Send a successful unary response."""
    await _send_whole(send, 200, encode(message))


async def send_unary_error(send: Send, error: ConnectError) -> None:
    """Send a unary error response: the HTTP status for the code and the JSON error."""
    await _send_whole(send, HTTP_STATUS.get(error.code, 500), encode(error.to_json()))


async def _send_whole(send: Send, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", UNARY_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class EnvelopeReader:
    """Incremental parser of enveloped messages from request body chunks."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return every complete ``(flags, payload)`` envelope they finish."""
        self._buffer += chunk
        out: list[tuple[int, bytes]] = []
        while len(self._buffer) >= 5:
            flags, size = struct.unpack_from(">BI", self._buffer)
            if size > MAX_MESSAGE:
                raise ConnectError("resource_exhausted", "request message is too large")
            if len(self._buffer) < 5 + size:
                break
            out.append((flags, bytes(self._buffer[5 : 5 + size])))
            del self._buffer[: 5 + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete envelope still buffered."""
        return len(self._buffer)


async def iter_stream_requests(scope: Scope, receive: Receive) -> AsyncIterator[dict[str, Any]]:
    """Yield the messages of an enveloped (streaming) request body as they arrive."""
    _check_content_type(scope, STREAM_CONTENT_TYPE)
    reader = EnvelopeReader()
    async for chunk in iter_body(receive):
        for flags, payload in reader.feed(chunk):
            if flags & _COMPRESSED:
                raise ConnectError("internal", "compressed messages are not supported")
            if flags & _END_STREAM:
                return
            yield decode(payload)
    if reader.pending:
        raise ConnectError("invalid_argument", "request body ends inside a message")


async def read_stream_request(scope: Scope, receive: Receive) -> dict[str, Any]:
    """Read the single request message of a server-streaming call."""
    message: dict[str, Any] | None = None
    async for item in iter_stream_requests(scope, receive):
        if message is not None:
            raise ConnectError("invalid_argument", "expected exactly one request message")
        message = item
    if message is None:
        raise ConnectError("invalid_argument", "missing request message")
    return message


class FrameTracker:
    """Follows the envelopes of a streaming response being relayed, chunk by chunk.

    The gateway uses it to tell whether a stream cut short (the sandbox killed) stopped between
    two messages, where E2B's proxy ends it with an ``unavailable`` error the SDK understands.
    """

    def __init__(self) -> None:
        self._header = bytearray()
        self._left = 0
        self.ended = False

    def feed(self, chunk: bytes) -> None:
        """Account for the next relayed bytes."""
        view = memoryview(chunk)
        while view:
            if self._left:
                step = min(self._left, len(view))
                self._left -= step
                view = view[step:]
                continue
            need = 5 - len(self._header)
            self._header += view[:need]
            view = view[need:]
            if len(self._header) == 5:
                flags, self._left = struct.unpack(">BI", self._header)
                self.ended = self.ended or bool(flags & _END_STREAM)
                self._header.clear()

    @property
    def between_messages(self) -> bool:
        """True when the bytes so far end exactly after a whole message, before the end-stream."""
        return not self.ended and not self._left and not self._header


class Stream:
    """The sending side of a server-streaming RPC, with the options its request headers set."""

    def __init__(self, send: Send, scope: Scope) -> None:
        self._send = send
        raw = header(scope, "keepalive-ping-interval")
        try:
            interval = float(raw) if raw else 0.0
        except ValueError:
            interval = 0.0
        self.keepalive: float | None = interval if interval > 0 else None
        self.timeout_ms = timeout_ms(scope)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one message of the stream."""
        await send_message(self._send, message)

    async def send_frame(self, frame: bytes) -> None:
        """Send one message of the stream that is already framed (see :func:`envelope`)."""
        await self._send({"type": "http.response.body", "body": frame, "more_body": True})


async def start_stream(send: Send) -> None:
    """Begin a streaming response (always 200; errors travel in the end-stream envelope)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", STREAM_CONTENT_TYPE.encode())],
        }
    )


async def send_message(send: Send, message: Mapping[str, Any]) -> None:
    """Send one message of a streaming response."""
    await send({"type": "http.response.body", "body": envelope(message), "more_body": True})


async def finish_stream(send: Send, error: ConnectError | None = None) -> None:
    """Close a streaming response with the end-stream envelope."""
    await send({"type": "http.response.body", "body": end_stream(error), "more_body": False})
