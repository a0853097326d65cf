"""Admission of TCP connections: clients without a key cannot starve the runtime of descriptors.

Threat: any local user (or program) can open connections to the runtime's port. Without a
bound, connections that never send a request pile up past the descriptor limit; then ``accept``
fails, no sandbox can be created and calls to running ones time out until the attacker leaves.

Defences:

- At start the soft ``RLIMIT_NOFILE`` is raised to the hard limit (:func:`raise_descriptor_limit`),
  and the number of open client connections is capped well below it, as is the listen backlog
  (:func:`connection_limits`), leaving room for the sandboxes' own descriptors.
- A new connection must deliver complete request headers within :data:`HEADER_TIMEOUT` seconds
  and :data:`MAX_HEADER_BYTES` bytes, or it is closed.
- At the cap, a new connection evicts the oldest one that has not yet sent its headers; only if
  there is none is the new one refused. A client with the key sends its headers at once, so it is
  admitted however many idle connections an attacker holds.
- Every answer to a request that did not authenticate (wrong key, wrong token, ``/health``,
  unknown sandbox) closes its connection (see :mod:`~langchain_e2b.local.gateway`), so a
  connection can stay open past its first request only for a client holding a key or token.

Remaining gap: an attacker who can open connections faster than a legitimate client sends its
first bytes (microseconds on loopback) can still delay that client's connection; the client's
retry gets in.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger("langchain_e2b.local")

HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024
# Descriptors kept for everything but client connections: per-sandbox agent sockets, pipes, logs.
_RESERVED_DESCRIPTORS = 256
_MAX_CAP = 4096
_MIN_CAP = 32
_MAX_BACKLOG = 1024
_MIN_BACKLOG = 16


def raise_descriptor_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the descriptor limit from %d to %d: %s", soft, target, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limits(descriptor_limit: int) -> tuple[int, int]:
    """``(cap, backlog)``: open client connections allowed, and the listen backlog.

    asyncio accepts up to ``backlog`` sockets in one go before any of them reaches the guard, so
    the cap, one such burst and the runtime's own descriptors must all fit under the limit;
    otherwise ``accept`` fails with ``EMFILE`` and asyncio stops accepting for a second.
    """
    room = max(0, descriptor_limit - _RESERVED_DESCRIPTORS)
    # Several bursts can be in flight before the guard sees the first: keep each one small.
    backlog = max(_MIN_BACKLOG, min(_MAX_BACKLOG, room // 8))
    cap = max(_MIN_CAP, min(_MAX_CAP, room // 2))
    return cap, backlog


class ConnectionGuard:
    """Counts client connections, times out silent ones and evicts them at the cap.

    Args:
        max_connections: Most client connections open at once.
        header_timeout: Seconds a new connection has to send complete request headers.
    """

    def __init__(self, max_connections: int, header_timeout: float = HEADER_TIMEOUT) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.evicted = 0
        # Connections still waiting for their first request headers, oldest first.
        self._pending: OrderedDict[_GuardedProtocol, None] = OrderedDict()

    def protocol_class(self) -> type[asyncio.Protocol]:
        """The HTTP protocol class to give uvicorn (``Config(http=...)``)."""
        return type("GuardedHTTPProtocol", (_GuardedProtocol,), {"guard": self})

    def _admit(self, conn: _GuardedProtocol) -> bool:
        if self.open >= self.max_connections:
            if not self._pending:
                return False
            oldest, _ = self._pending.popitem(last=False)
            self.evicted += 1
            oldest.drop()
        self.open += 1
        self._pending[conn] = None
        return True

    def _headers_done(self, conn: _GuardedProtocol) -> None:
        self._pending.pop(conn, None)

    def _closed(self, conn: _GuardedProtocol) -> None:
        self._pending.pop(conn, None)
        self.open -= 1


class _GuardedProtocol(asyncio.Protocol):
    """uvicorn's HTTP protocol behind the guard's admission, header timeout and size bound."""

    guard: ConnectionGuard

    def __init__(self, **kwargs: Any) -> None:
        self._inner: Any = AutoHTTPProtocol(**kwargs)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._waiting_headers = True
        self._seen = 0
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self.guard._admit(self):
            transport.abort()
            return
        self._admitted = True
        self._timer = self._loop.call_later(self.guard.header_timeout, self.drop)
        self._inner.connection_made(transport)

    def drop(self) -> None:
        """Close the connection without a response (a client that never asked for anything)."""
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._waiting_headers:
            self._seen += len(data)
            if b"\r\n\r\n" in self._tail + data:
                self._end_wait()
            elif self._seen > MAX_HEADER_BYTES:
                self.drop()
                return
            else:
                self._tail = data[-3:]
        self._inner.data_received(data)

    def _end_wait(self) -> None:
        self._waiting_headers = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.guard._headers_done(self)

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return None
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.guard._closed(self)
        self._admitted = False
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()
