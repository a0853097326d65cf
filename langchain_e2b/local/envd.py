"""envd in the jail: E2B's process and filesystem RPCs (Connect JSON), ``/files``, ``/health``.

Everything here runs with the sandbox's own privileges, so paths are simply resolved against the
user's home and used: the jail, not this module, is the security boundary.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import grp
import logging
import mimetypes
import os
import pty
import pwd
import re
import shutil
import signal
import stat
import struct
import subprocess
import termios
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

from langchain_e2b.local import _connect as rpc
from langchain_e2b.local._connect import ConnectError, field
from langchain_e2b.local._http import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    iter_body,
    query,
    send_chunk,
    send_error,
    send_json,
    send_response,
    start_stream,
)

logger = logging.getLogger(__name__)

# After a process exits, its output pipes are read until they fall quiet for this long: a
# background child (``cmd &``) may hold them open for ever, and the command must still end.
DRAIN_IDLE = 0.2
# Chunks queued per stream subscriber before the reader waits (backpressure to the process).
SUBSCRIBER_QUEUE = 64
READ_CHUNK = 64 * 1024
FILE_CHUNK = 256 * 1024
# Events a polling watcher keeps between GetWatcherEvents calls; older ones are dropped.
MAX_WATCHER_EVENTS = 10_000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_WATCH_MASK = (
    _IN_CREATE | _IN_MODIFY | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_ATTRIB
) | _IN_DELETE_SELF
_INOTIFY_EVENT = struct.Struct("iIII")


# -- small helpers -------------------------------------------------------------------------------


def _child_setup(*, controlling_tty: bool) -> Callable[[], None]:
    """Code run in each child between fork and exec."""

    def setup() -> None:
        if controlling_tty:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # Without a jail (development mode) nothing else would kill user processes if the
        # agent died; inside the jail the PID namespace already does.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return setup


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConnectError("invalid_argument", f"{what} must be base64 bytes")
    try:
        return base64.b64decode(value, validate=False)
    except ValueError as exc:
        raise ConnectError("invalid_argument", f"{what} is not valid base64: {exc}") from None


def _parse_signal(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        name = value.upper().removeprefix("SIGNAL_")
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            number = int(signal.Signals[name])
        except KeyError:
            raise ConnectError("invalid_argument", f"unknown signal {value!r}") from None
    else:
        raise ConnectError("invalid_argument", "signal is required")
    if number <= 0 or number >= signal.NSIG:
        raise ConnectError("invalid_argument", f"unknown signal {value!r}")
    return number


def _permissions(mode: int) -> str:
    """The mode as Go's ``FileMode.String()`` writes it (what envd reports)."""
    kind = ""
    if stat.S_ISDIR(mode):
        kind += "d"
    if stat.S_ISLNK(mode):
        kind += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        kind += "D"
    if stat.S_ISFIFO(mode):
        kind += "p"
    if stat.S_ISSOCK(mode):
        kind += "S"
    if mode & stat.S_ISUID:
        kind += "u"
    if mode & stat.S_ISGID:
        kind += "g"
    if stat.S_ISCHR(mode):
        kind += "c"
    if mode & stat.S_ISVTX:
        kind += "t"
    bits = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (kind or "-") + bits


def _rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}Z" if nanos else f"{text}Z"


def _xattr_metadata(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    metadata: dict[str, str] = {}
    for name in names:
        if name.startswith("user.e2b."):
            with contextlib.suppress(OSError):
                value = os.getxattr(path, name, follow_symlinks=False)
                metadata[name[len("user.e2b.") :]] = value.decode("utf-8", "replace")
    return metadata


# -- processes -------------------------------------------------------------------------------------

_Item = tuple[str, Any]  # ("stdout" | "stderr" | "pty", bytes) or ("end", end-event dict)


class _Process:
    """One process started by ``Start``: its output fan-out, stdin and lifetime.

    All its pipes (or its terminal) are raw non-blocking descriptors owned here, so the
    process's exit is seen even when a background child keeps its output open.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        *,
        tag: str | None,
        config: dict[str, Any],
        outputs: dict[str, int],
        stdin_fd: int | None,
        master: int | None,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.tag = tag
        self.config = config
        self.outputs = outputs
        self.stdin_fd = stdin_fd
        self.master = master
        self.timed_out = False
        self._subscribers: list[asyncio.Queue[_Item]] = []
        self._deadline: asyncio.TimerHandle | None = None
        self._last_output = 0.0
        self._delivering = 0
        self._stdin_lock = asyncio.Lock()

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": self.pid, "config": self.config}
        if self.tag is not None:
            out["tag"] = self.tag
        return out

    def subscribe(self) -> asyncio.Queue[_Item]:
        q: asyncio.Queue[_Item] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[_Item]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(q)
        # Unblock a reader that may be waiting to put into this queue.
        while not q.empty():
            q.get_nowait()

    def set_deadline(self, seconds: float) -> None:
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.timed_out = True
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Signal the process's whole group (it leads its own session)."""
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def write(self, data: bytes) -> None:
        async with self._stdin_lock:
            if self.stdin_fd is None:
                raise ConnectError("failed_precondition", f"stdin of process {self.pid} is closed")
            try:
                await _write_fd(self.stdin_fd, data)
            except (BrokenPipeError, ConnectionResetError):
                raise ConnectError(
                    "failed_precondition", f"process {self.pid} no longer reads its stdin"
                ) from None

    async def close_stdin(self) -> None:
        if self.master is not None:
            await self.write(b"\x04")  # end-of-file for a terminal's reader
            return
        async with self._stdin_lock:
            if self.stdin_fd is not None:
                os.close(self.stdin_fd)
                self.stdin_fd = None

    def resize(self, cols: int, rows: int) -> None:
        if self.master is None:
            raise ConnectError("failed_precondition", f"process {self.pid} has no terminal")
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def _publish(self, item: _Item) -> None:
        self._delivering += 1
        try:
            for q in list(self._subscribers):
                await q.put(item)
        finally:
            self._delivering -= 1

    async def _pump(self, key: str, fd: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            chunk = await _read_fd(fd)
            if not chunk:
                return
            self._last_output = loop.time()
            await self._publish((key, chunk))

    async def run(self, on_exit: Callable[[_Process], None]) -> None:
        """Relay output until the process exits and its output is drained, then end."""
        loop = asyncio.get_running_loop()
        readers = [asyncio.create_task(self._pump(k, fd)) for k, fd in self.outputs.items()]
        try:
            returncode = await self.proc.wait()
            self._last_output = max(self._last_output, loop.time())
            pending = set(readers)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=DRAIN_IDLE / 2)
                quiet = loop.time() - self._last_output >= DRAIN_IDLE
                if pending and quiet and not self._delivering:
                    break
        finally:
            for task in readers:
                task.cancel()
            for task in readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._deadline is not None:
                self._deadline.cancel()
            fds = {*self.outputs.values(), self.stdin_fd, self.master}
            self.stdin_fd = None
            for fd in fds:
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            on_exit(self)
        await self._publish(("end", _end_event(returncode)))


async def _wait_fd(fd: int, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    if write:
        loop.add_writer(fd, _wake, ready)
    else:
        loop.add_reader(fd, _wake, ready)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _read_fd(fd: int) -> bytes:
    """Read from a non-blocking descriptor; b"" at end of file (or of a terminal)."""
    while True:
        try:
            return os.read(fd, READ_CHUNK)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EIO:  # the terminal's last user went away
                return b""
            raise
        await _wait_fd(fd, write=False)


async def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _wait_fd(fd, write=True)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _end_event(returncode: int) -> dict[str, Any]:
    if returncode >= 0:
        end: dict[str, Any] = {"exited": True, "status": f"exit status {returncode}"}
        if returncode:
            end["exitCode"] = returncode
        return end
    signum = -returncode
    name = (signal.strsignal(signum) or f"signal {signum}").lower()
    return {"exitCode": -1, "status": f"signal: {name}"}


# -- watching --------------------------------------------------------------------------------------


class _Watch:
    """Filesystem events under one directory, from inotify, delivered to ``sink``."""

    def __init__(
        self,
        root: str,
        *,
        recursive: bool,
        include_entry: bool,
        sink: Callable[[list[dict[str, Any]]], None],
        entry_info: Callable[[str], dict[str, Any]],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.include_entry = include_entry
        self._sink = sink
        self._entry_info = entry_info
        self._on_close = on_close
        self._wds: dict[int, str] = {}
        self.closed = False
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise rpc.from_os_error(OSError(err, os.strerror(err)), "cannot watch")
        self._fd = fd
        try:
            self._add(root, "", root_dir=True)
            if recursive:
                self._add_tree(root, "")
        except BaseException:
            os.close(fd)
            raise
        asyncio.get_running_loop().add_reader(fd, self._ready)

    def _add(self, path: str, rel: str, *, root_dir: bool = False) -> None:
        mask = _WATCH_MASK | (_IN_ONLYDIR if root_dir else 0)
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if root_dir:
                raise rpc.from_os_error(OSError(err, os.strerror(err)), path)
            return
        self._wds[wd] = rel

    def _add_tree(self, path: str, rel: str) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                child = os.path.join(rel, entry.name)
                self._add(entry.path, child)
                self._add_tree(entry.path, child)

    def _ready(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        events: list[dict[str, Any]] = []
        offset = 0
        root_gone = False
        while offset + _INOTIFY_EVENT.size <= len(data):
            wd, mask, _cookie, size = _INOTIFY_EVENT.unpack_from(data, offset)
            raw = data[offset + _INOTIFY_EVENT.size : offset + _INOTIFY_EVENT.size + size]
            offset += _INOTIFY_EVENT.size + size
            name = os.fsdecode(raw.rstrip(b"\0"))
            base = self._wds.get(wd)
            if mask & _IN_IGNORED:
                self._wds.pop(wd, None)
                root_gone = root_gone or base == ""
                continue
            if base is None or mask & _IN_Q_OVERFLOW:
                continue
            if mask & _IN_DELETE_SELF:
                if base == "":
                    root_gone = True
                continue
            rel = os.path.join(base, name) if name else base
            full = os.path.join(self.root, rel)
            if mask & (_IN_CREATE | _IN_MOVED_TO):
                kind = "EVENT_TYPE_CREATE"
                if self.recursive and mask & _IN_ISDIR:
                    self._add(full, rel)
                    self._add_tree(full, rel)
            elif mask & _IN_MODIFY:
                kind = "EVENT_TYPE_WRITE"
            elif mask & _IN_DELETE:
                kind = "EVENT_TYPE_REMOVE"
            elif mask & _IN_MOVED_FROM:
                kind = "EVENT_TYPE_RENAME"
            elif mask & _IN_ATTRIB:
                kind = "EVENT_TYPE_CHMOD"
            else:
                continue
            event: dict[str, Any] = {"name": rel, "type": kind}
            # A burst of writes to one file is one event to the reader.
            if events and events[-1]["name"] == rel and events[-1]["type"] == kind:
                continue
            if self.include_entry and kind not in ("EVENT_TYPE_REMOVE", "EVENT_TYPE_RENAME"):
                with contextlib.suppress(OSError, ConnectError):
                    event["entry"] = self._entry_info(full)
            events.append(event)
        if events:
            self._sink(events)
        if root_gone:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._on_close is not None:
            self._on_close()


class _PollingWatcher:
    """A watcher for CreateWatcher/GetWatcherEvents: events wait here until fetched."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.watch: _Watch | None = None

    def add(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)
        if len(self.events) > MAX_WATCHER_EVENTS:
            del self.events[: len(self.events) - MAX_WATCHER_EVENTS]


# -- multipart -------------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Multipart:
    """Streaming ``multipart/form-data`` parser: yields part headers, data and part ends."""

    def __init__(self, boundary: bytes) -> None:
        self._delim = b"\r\n--" + boundary
        # The first boundary has no CRLF before it; pretend it has, so one delimiter fits all.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, chunk: bytes) -> list[tuple[str, Any]]:
        self._buf += chunk
        out: list[tuple[str, Any]] = []
        keep = len(self._delim) - 1
        while True:
            if self._state in ("preamble", "body"):
                idx = self._buf.find(self._delim)
                if idx < 0:
                    cut = max(0, len(self._buf) - keep)
                    if self._state == "body" and cut:
                        out.append(("data", bytes(self._buf[:cut])))
                    del self._buf[:cut]
                    return out
                if self._state == "body":
                    if idx:
                        out.append(("data", bytes(self._buf[:idx])))
                    out.append(("end", None))
                del self._buf[: idx + len(self._delim)]
                self._state = "boundary"
            elif self._state == "boundary":
                eol = self._buf.find(b"\r\n")
                if eol < 0:
                    if len(self._buf) > 1024:
                        raise _BadRequest(400, "malformed multipart boundary line")
                    return out
                line = bytes(self._buf[:eol]).strip(b" \t")
                del self._buf[: eol + 2]
                if line.startswith(b"--"):
                    self._state = "done"
                    return out
                if line:
                    raise _BadRequest(400, "malformed multipart boundary line")
                self._state = "headers"
            elif self._state == "headers":
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if self._buf.startswith(b"\r\n"):  # a part with no headers
                        del self._buf[:2]
                        out.append(("part", {}))
                        self._state = "body"
                        continue
                    if len(self._buf) > 64 * 1024:
                        raise _BadRequest(400, "multipart part headers are too large")
                    return out
                headers: dict[str, str] = {}
                for line_bytes in bytes(self._buf[:end]).split(b"\r\n"):
                    name, _, value = line_bytes.decode("utf-8", "replace").partition(":")
                    headers[name.strip().lower()] = value.strip()
                del self._buf[: end + 4]
                out.append(("part", headers))
                self._state = "body"
            else:
                return out


_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_FORM_ESCAPE = re.compile(r"%(22|0[0-9A-Fa-f]|1[0-9A-Fa-f])")


def _disposition(value: str) -> dict[str, str]:
    """Parameters of a form-data Content-Disposition, decoded the way browsers/httpx encode them."""
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + value.partition(";")[2]):
        key = key.lower()
        if raw.startswith('"'):
            text = re.sub(r"\\(.)", r"\1", raw[1:-1])
            text = _FORM_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        else:
            text = raw.strip()
        if key.endswith("*"):
            charset, _, encoded = text.partition("''")
            text = unquote(encoded, encoding=charset or "utf-8", errors="replace")
            key = key[:-1]
        params[key] = text
    return params


def _boundary(content_type: str) -> bytes | None:
    for key, raw in _PARAM.findall(";" + content_type.partition(";")[2]):
        if key.lower() == "boundary":
            value = raw.strip()
            if value.startswith('"'):
                value = value[1:-1]
            return value.encode("latin-1") if value else None
    return None


# -- file writing ----------------------------------------------------------------------------------


class _FileSink:
    """One file being written by an upload."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "path is a directory", path)
        # O_NONBLOCK so a FIFO at the path fails instead of hanging the agent.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NONBLOCK
        self.fd = os.open(path, flags, 0o644)
        os.set_blocking(self.fd, True)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _upload_error(exc: OSError, path: str) -> _BadRequest:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _BadRequest(507, f"not enough disk space to write {path}: {exc.strerror}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _BadRequest(403, f"permission denied: {path}")
    if exc.errno == errno.ENOENT:
        return _BadRequest(404, f"{path}: {exc.strerror}")
    return _BadRequest(400, f"cannot write {path}: {exc.strerror or exc}")


def _wants_gzip(accept: str | None) -> bool:
    for item in (accept or "").split(","):
        token, _, params = item.strip().partition(";")
        if token.strip().lower() != "gzip":
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


# -- envd ------------------------------------------------------------------------------------------

_Unary = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
_SyncUnary = Callable[[dict[str, Any]], dict[str, Any]]
_StreamHandler = Callable[[dict[str, Any], "_Stream"], Coroutine[Any, Any, None]]


class _Stream:
    """The sending side of a server-streaming RPC."""

    def __init__(self, send: Send, scope: Scope) -> None:
        self._send = send
        raw = header(scope, "keepalive-ping-interval")
        try:
            interval = float(raw) if raw else 0.0
        except ValueError:
            interval = 0.0
        self.keepalive: float | None = interval if interval > 0 else None
        self.timeout_ms = rpc.timeout_ms(scope)

    async def send(self, message: Mapping[str, Any]) -> None:
        await rpc.send_message(self._send, message)


class Envd:
    """E2B's envd as an ASGI app.

    Args:
        home: The sandbox user's home directory; relative paths and the default cwd resolve here.
        user: The sandbox user's name (reported as the owner of the user's files).
        env: The base environment of every process (the agent's own is never passed on).
    """

    def __init__(self, *, home: str, user: str, env: Mapping[str, str]) -> None:
        self.home = os.path.abspath(home)
        self.user = user
        self.base_env = dict(env)
        self.global_env: dict[str, str] = {}
        self._procs: dict[int, _Process] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchers: dict[str, _PollingWatcher] = {}
        self._unary: dict[str, _Unary] = {
            "/process.Process/List": self._list,
            "/process.Process/SendInput": self._send_input,
            "/process.Process/SendSignal": self._send_signal,
            "/process.Process/CloseStdin": self._close_stdin,
            "/process.Process/Update": self._update,
            "/filesystem.Filesystem/CreateWatcher": self._create_watcher,
            "/filesystem.Filesystem/GetWatcherEvents": self._get_watcher_events,
            "/filesystem.Filesystem/RemoveWatcher": self._remove_watcher,
        }
        # Filesystem calls that may block on the disk run in a worker thread.
        self._sync: dict[str, _SyncUnary] = {
            "/filesystem.Filesystem/Stat": self._stat,
            "/filesystem.Filesystem/MakeDir": self._make_dir,
            "/filesystem.Filesystem/Move": self._move,
            "/filesystem.Filesystem/ListDir": self._list_dir,
            "/filesystem.Filesystem/Remove": self._remove,
        }
        self._streams: dict[str, _StreamHandler] = {
            "/process.Process/Start": self._start,
            "/process.Process/Connect": self._connect,
            "/filesystem.Filesystem/WatchDir": self._watch_dir,
        }

    def update_env(self, env: Mapping[str, str]) -> None:
        """Merge global environment variables into the environment of later processes."""
        self.global_env.update(env)

    def kill_all(self) -> None:
        """Kill every process group started here (their streams then end normally)."""
        for proc in list(self._procs.values()):
            proc.signal(signal.SIGKILL)

    async def close(self) -> None:
        """Kill every process group and stop every watcher."""
        self.kill_all()
        for watcher in list(self._watchers.values()):
            if watcher.watch is not None:
                watcher.watch.close()
        self._watchers.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one envd request."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path == "/health":
                await send_response(send, 204, b"", content_type=None)
            elif path == "/files":
                await self._files(scope, receive, send)
            elif path.startswith(("/process.Process/", "/filesystem.Filesystem/")):
                await self._rpc(scope, receive, send, path)
            else:
                await send_error(send, 404, f"no such endpoint: {path}")
        except ClientDisconnected:
            return

    async def _rpc(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if scope["method"] != "POST":
            await send_error(send, 405, "RPC methods take POST")
            return
        if path in self._streams:
            await self._serve_stream(scope, receive, send, self._streams[path])
        elif path == "/process.Process/StreamInput":
            await self._stream_input(scope, receive, send)
        elif path in self._unary or path in self._sync:
            try:
                request = await rpc.read_unary(scope, receive)
                if path in self._sync:
                    response = await asyncio.to_thread(self._sync[path], request)
                else:
                    response = await self._unary[path](request)
            except ConnectError as exc:
                await rpc.send_unary_error(send, exc)
                return
            except OSError as exc:
                await rpc.send_unary_error(send, rpc.from_os_error(exc))
                return
            except (ValueError, TypeError) as exc:
                await rpc.send_unary_error(send, ConnectError("invalid_argument", str(exc)))
                return
            await rpc.send_unary(send, response)
        else:
            error = ConnectError("unimplemented", f"unknown method {path}")
            await rpc.send_unary_error(send, error)

    async def _serve_stream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        handler: _StreamHandler,
    ) -> None:
        stream = _Stream(send, scope)
        error: ConnectError | None = None
        try:
            request = await rpc.read_stream_request(scope, receive)
        except ConnectError as exc:
            await rpc.start_stream(send)
            await rpc.finish_stream(send, exc)
            return
        await rpc.start_stream(send)
        work = asyncio.create_task(handler(request, stream))
        gone = asyncio.create_task(_wait_disconnect(receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
        if work.cancelled():
            return  # the client went away (or the server is stopping)
        failure = work.exception()
        if isinstance(failure, ConnectError):
            error = failure
        elif isinstance(failure, OSError):
            error = rpc.from_os_error(failure)
        elif failure is not None:
            logger.error("stream handler failed", exc_info=failure)
            error = ConnectError("internal", str(failure))
        await rpc.finish_stream(send, error)

    # -- processes -----------------------------------------------------------------------------

    def _find(self, request: Mapping[str, Any]) -> _Process:
        selector = field(request, "process")
        if not isinstance(selector, dict):
            raise ConnectError("invalid_argument", "process selector is required")
        pid = selector.get("pid")
        tag = selector.get("tag")
        if pid is not None:
            try:
                proc = self._procs.get(int(pid))
            except (TypeError, ValueError):
                raise ConnectError("invalid_argument", f"invalid pid {pid!r}") from None
            if proc is None:
                raise ConnectError("not_found", f"process with pid {pid} not found")
            return proc
        if isinstance(tag, str):
            for proc in self._procs.values():
                if proc.tag == tag:
                    return proc
            raise ConnectError("not_found", f"process with tag {tag!r} not found")
        raise ConnectError("invalid_argument", "process selector needs a pid or a tag")

    def _resolve_cwd(self, cwd: Any) -> str:
        if cwd is None or cwd == "":
            return self.home
        if not isinstance(cwd, str):
            raise ConnectError("invalid_argument", "cwd must be a string")
        path = self.resolve(cwd)
        if not os.path.isdir(path):
            raise ConnectError("invalid_argument", f"cwd '{path}' is not an existing directory")
        return path

    async def _spawn(self, request: Mapping[str, Any]) -> _Process:
        config = field(request, "process")
        if not isinstance(config, dict):
            raise ConnectError("invalid_argument", "process config is required")
        cmd = config.get("cmd")
        args = config.get("args") or []
        envs = config.get("envs") or {}
        if not isinstance(cmd, str) or not cmd:
            raise ConnectError("invalid_argument", "process.cmd is required")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConnectError("invalid_argument", "process.args must be a list of strings")
        if not isinstance(envs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in envs.items()
        ):
            raise ConnectError("invalid_argument", "process.envs must map strings to strings")
        cwd = self._resolve_cwd(config.get("cwd"))
        tag = field(request, "tag")
        stdin = field(request, "stdin", True)
        pty_config = field(request, "pty")
        env = {**self.base_env, **self.global_env, **envs}
        if any("\0" in s for s in (cmd, *args, *env, *env.values())):
            raise ConnectError("invalid_argument", "process arguments must not contain NUL")
        info: dict[str, Any] = {"cmd": cmd, "args": args, "envs": envs}
        if config.get("cwd"):
            info["cwd"] = config["cwd"]
        tag = tag if isinstance(tag, str) else None
        if isinstance(pty_config, dict):
            size = pty_config.get("size") or {}
            cols, rows = int(size.get("cols") or 80), int(size.get("rows") or 24)
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            child_fds = [slave, slave, slave]
            ours = {"pty": master}
            stdin_fd: int | None = master
        else:
            master = None
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            ours = {"stdout": out_r, "stderr": err_r}
            if stdin:
                in_r, stdin_fd = os.pipe()
                child_fds = [in_r, out_w, err_w]
            else:
                stdin_fd = None
                child_fds = [subprocess.DEVNULL, out_w, err_w]
        parent_fds = [*ours.values(), *([stdin_fd] if stdin_fd is not None and not master else [])]
        try:
            proc = await asyncio.create_subprocess_exec(
                cmd,
                *args,
                stdin=child_fds[0],
                stdout=child_fds[1],
                stderr=child_fds[2],
                cwd=cwd,
                env=env,
                start_new_session=master is None,
                preexec_fn=_child_setup(controlling_tty=master is not None),
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            for fd in parent_fds:
                os.close(fd)
            raise ConnectError("invalid_argument", f"cannot start {cmd}: {exc}") from None
        finally:
            for fd in set(child_fds):
                if fd >= 0:
                    os.close(fd)
        for fd in parent_fds:
            os.set_blocking(fd, False)
        process = _Process(
            proc, tag=tag, config=info, outputs=ours, stdin_fd=stdin_fd, master=master
        )
        self._procs[process.pid] = process
        return process

    def _launch(self, process: _Process) -> None:
        task = asyncio.create_task(process.run(self._forget))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, process: _Process) -> None:
        self._procs.pop(process.pid, None)

    async def _start(self, request: dict[str, Any], stream: _Stream) -> None:
        process = await self._spawn(request)
        queue = process.subscribe()
        self._launch(process)
        if stream.timeout_ms is not None:
            process.set_deadline(stream.timeout_ms / 1000)
        await self._relay(process, queue, stream)

    async def _connect(self, request: dict[str, Any], stream: _Stream) -> None:
        process = self._find(request)
        queue = process.subscribe()
        relay = self._relay(process, queue, stream)
        if stream.timeout_ms is None:
            await relay
            return
        try:
            await asyncio.wait_for(relay, stream.timeout_ms / 1000)
        except asyncio.TimeoutError:
            raise ConnectError("deadline_exceeded", "the stream's deadline expired") from None

    async def _relay(self, process: _Process, queue: asyncio.Queue[_Item], stream: _Stream) -> None:
        try:
            await stream.send({"event": {"start": {"pid": process.pid}}})
            while True:
                try:
                    kind, payload = await asyncio.wait_for(queue.get(), stream.keepalive)
                except asyncio.TimeoutError:
                    await stream.send({"event": {"keepalive": {}}})
                    continue
                if kind != "end":
                    await stream.send({"event": {"data": {kind: _b64(payload)}}})
                    continue
                if process.timed_out:
                    raise ConnectError(
                        "deadline_exceeded",
                        f"process {process.pid} was killed: it ran past its timeout",
                    )
                await stream.send({"event": {"end": payload}})
                return
        finally:
            process.unsubscribe(queue)

    async def _list(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"processes": [p.info() for p in self._procs.values()]}

    async def _send_input(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._find(request)
        data = field(request, "input") or {}
        if not isinstance(data, dict):
            raise ConnectError("invalid_argument", "input must be an object")
        await self._write_input(process, data)
        return {}

    async def _write_input(self, process: _Process, data: Mapping[str, Any]) -> None:
        if "pty" in data:
            if process.master is None:
                raise ConnectError("failed_precondition", f"process {process.pid} has no pty")
            await process.write(_unb64(data["pty"], "input.pty"))
        elif "stdin" in data:
            await process.write(_unb64(data["stdin"], "input.stdin"))

    async def _stream_input(self, scope: Scope, receive: Receive, send: Send) -> None:
        error: ConnectError | None = None
        process: _Process | None = None
        try:
            async for message in rpc.iter_stream_requests(scope, receive):
                if "start" in message:
                    start = message["start"] or {}
                    process = self._find(start if isinstance(start, dict) else {})
                elif "data" in message:
                    if process is None:
                        raise ConnectError("invalid_argument", "the stream must begin with start")
                    data = message["data"] or {}
                    data = field(data, "input") if isinstance(data, dict) else None
                    if isinstance(data, dict):
                        await self._write_input(process, data)
        except ConnectError as exc:
            error = exc
        except OSError as exc:
            error = rpc.from_os_error(exc)
        await rpc.start_stream(send)
        if error is None:
            await rpc.send_message(send, {})
        await rpc.finish_stream(send, error)

    async def _send_signal(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._find(request)
        process.signal(_parse_signal(field(request, "signal")))
        return {}

    async def _close_stdin(self, request: dict[str, Any]) -> dict[str, Any]:
        await self._find(request).close_stdin()
        return {}

    async def _update(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._find(request)
        pty_config = field(request, "pty")
        if isinstance(pty_config, dict):
            size = pty_config.get("size") or {}
            process.resize(int(size.get("cols") or 80), int(size.get("rows") or 24))
        return {}

    # -- filesystem ----------------------------------------------------------------------------

    def resolve(self, path: Any) -> str:
        """Resolve a path the way envd does: relative to home, ``~`` is home."""
        if not isinstance(path, str):
            raise ConnectError("invalid_argument", "path must be a string")
        if "\0" in path:
            raise ConnectError("invalid_argument", "path must not contain NUL")
        if path == "~" or path.startswith("~/"):
            path = self.home + path[1:]
        resolved = os.path.normpath(os.path.join(self.home, path))
        if resolved.startswith("//"):
            resolved = "/" + resolved.lstrip("/")
        return resolved

    def entry_info(self, path: str) -> dict[str, Any]:
        """EntryInfo for ``path`` (not following a final symlink, but typed by its target)."""
        st = os.lstat(path)
        info: dict[str, Any] = {"name": os.path.basename(path) or path, "path": path}
        target_mode = st.st_mode
        if stat.S_ISLNK(st.st_mode):
            info["isSymlink"] = True
            info["symlinkTarget"] = os.path.realpath(path)
            try:
                target_mode = os.stat(path).st_mode
            except OSError:
                target_mode = 0
        if stat.S_ISDIR(target_mode):
            info["type"] = "FILE_TYPE_DIRECTORY"
        elif target_mode:
            info["type"] = "FILE_TYPE_FILE"
        if st.st_size:
            info["size"] = str(st.st_size)
        mode = stat.S_IMODE(st.st_mode) & 0o777
        if mode:
            info["mode"] = mode
        info["permissions"] = _permissions(st.st_mode)
        info["owner"] = self._owner(st.st_uid)
        info["group"] = self._group(st.st_gid)
        info["modifiedTime"] = _rfc3339(st.st_mtime_ns)
        metadata = _xattr_metadata(path)
        if metadata:
            info["metadata"] = metadata
        return info

    def _owner(self, uid: int) -> str:
        if uid == os.getuid():
            return self.user
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def _group(self, gid: int) -> str:
        if gid == os.getgid():
            return self.user
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    def _stat_path(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        path = self.resolve(field(request, "path", ""))
        try:
            return path, self.entry_info(path)
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None

    def _stat(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"entry": self._stat_path(request)[1]}

    def _make_dir(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self.resolve(field(request, "path", ""))
        if os.path.lexists(path):
            kind = "directory" if os.path.isdir(path) else "file"
            raise ConnectError("already_exists", f"{path}: a {kind} already exists at this path")
        try:
            os.makedirs(path)
            return {"entry": self.entry_info(path)}
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None

    def _move(self, request: dict[str, Any]) -> dict[str, Any]:
        source = self.resolve(field(request, "source", ""))
        destination = self.resolve(field(request, "destination", ""))
        if not os.path.lexists(source):
            raise ConnectError("not_found", f"{source}: no such file or directory")
        try:
            parent = os.path.dirname(destination)
            if parent:
                os.makedirs(parent, exist_ok=True)
            os.rename(source, destination)
            return {"entry": self.entry_info(destination)}
        except OSError as exc:
            raise rpc.from_os_error(exc, destination) from None

    def _remove(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self.resolve(field(request, "path", ""))
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None
        return {}

    def _list_dir(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self.resolve(field(request, "path", ""))
        depth = field(request, "depth", 1)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ConnectError("invalid_argument", "depth must be a non-negative integer")
        try:
            if not os.path.isdir(path):
                os.stat(path)  # raises not_found for a missing path
                raise ConnectError("invalid_argument", f"{path} is not a directory")
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None
        entries = self._walk(path, max(depth, 1))
        return {"entries": entries}

    def _walk(self, root: str, depth: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []

        def visit(directory: str, level: int) -> None:
            try:
                with os.scandir(directory) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError:
                return
            for child in children:
                path = os.path.join(directory, child.name)
                try:
                    entries.append(self.entry_info(path))
                except OSError:
                    continue
                if level < depth and child.is_dir(follow_symlinks=False):
                    visit(path, level + 1)

        visit(root, 1)
        return entries

    def _watch_root(self, request: Mapping[str, Any]) -> str:
        path = self.resolve(field(request, "path", ""))
        try:
            if not stat.S_ISDIR(os.stat(path).st_mode):
                raise ConnectError("invalid_argument", f"{path} is not a directory")
        except OSError as exc:
            raise rpc.from_os_error(exc, path) from None
        return path

    async def _watch_dir(self, request: dict[str, Any], stream: _Stream) -> None:
        root = self._watch_root(request)
        queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
        watch = _Watch(
            root,
            recursive=bool(field(request, "recursive", False)),
            include_entry=bool(field(request, "includeEntry", False)),
            sink=queue.put_nowait,
            entry_info=self.entry_info,
            on_close=lambda: queue.put_nowait(None),
        )
        try:
            await stream.send({"start": {}})
            while True:
                try:
                    events = await asyncio.wait_for(queue.get(), stream.keepalive)
                except asyncio.TimeoutError:
                    await stream.send({"keepalive": {}})
                    continue
                if events is None:
                    return
                for event in events:
                    await stream.send({"filesystem": event})
        finally:
            watch.close()

    async def _create_watcher(self, request: dict[str, Any]) -> dict[str, Any]:
        root = self._watch_root(request)
        watcher = _PollingWatcher()
        watcher.watch = _Watch(
            root,
            recursive=bool(field(request, "recursive", False)),
            include_entry=bool(field(request, "includeEntry", False)),
            sink=watcher.add,
            entry_info=self.entry_info,
        )
        watcher_id = str(uuid.uuid4())
        self._watchers[watcher_id] = watcher
        return {"watcherId": watcher_id}

    def _watcher(self, request: Mapping[str, Any]) -> tuple[str, _PollingWatcher]:
        watcher_id = field(request, "watcherId")
        watcher = self._watchers.get(watcher_id) if isinstance(watcher_id, str) else None
        if watcher is None:
            raise ConnectError("not_found", f"watcher {watcher_id!r} not found")
        return watcher_id, watcher

    async def _get_watcher_events(self, request: dict[str, Any]) -> dict[str, Any]:
        _, watcher = self._watcher(request)
        events, watcher.events = watcher.events, []
        return {"events": events}

    async def _remove_watcher(self, request: dict[str, Any]) -> dict[str, Any]:
        watcher_id, watcher = self._watcher(request)
        self._watchers.pop(watcher_id, None)
        if watcher.watch is not None:
            watcher.watch.close()
        return {}

    # -- /files --------------------------------------------------------------------------------

    async def _files(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] == "GET":
                await self._download(scope, send)
            elif scope["method"] == "POST":
                await self._upload(scope, receive, send)
            else:
                await send_error(send, 405, "use GET or POST on /files")
        except _BadRequest as exc:
            await send_error(send, exc.status, exc.message)

    async def _download(self, scope: Scope, send: Send) -> None:
        raw = query(scope).get("path")
        if not raw:
            raise _BadRequest(400, "the path query parameter is required")
        try:
            path = self.resolve(raw)
        except ConnectError as exc:
            raise _BadRequest(400, exc.message) from None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise _BadRequest(404, f"file '{path}' does not exist") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _BadRequest(403, f"permission denied: {path}") from None
            raise _BadRequest(400, f"cannot read {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise _BadRequest(400, f"path '{path}' is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise _BadRequest(400, f"path '{path}' is not a regular file")
            os.set_blocking(fd, True)
            name = os.path.basename(path)
            try:
                name.encode("ascii")
                disposition = f'inline; filename="{name}"'
            except UnicodeEncodeError:
                disposition = f"inline; filename*=UTF-8''{quote(name)}"
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            headers = [("content-disposition", disposition), ("vary", "Accept-Encoding")]
            if _wants_gzip(header(scope, "accept-encoding")):
                await start_stream(
                    send, 200, content_type, headers=[*headers, ("content-encoding", "gzip")]
                )
                compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
                while chunk := os.read(fd, FILE_CHUNK):
                    out = compressor.compress(chunk)
                    if out:
                        await send_chunk(send, out)
                await send_chunk(send, compressor.flush(), more=False)
                return
            headers.append(("content-length", str(st.st_size)))
            await start_stream(send, 200, content_type, headers=headers)
            while chunk := os.read(fd, FILE_CHUNK):
                await send_chunk(send, chunk)
            await send_chunk(send, b"", more=False)
        finally:
            os.close(fd)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query(scope)
        content_type = header(scope, "content-type") or ""
        encoding = (header(scope, "content-encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise _BadRequest(400, f"unsupported content encoding {encoding!r}")
        metadata = {
            k.decode("latin-1")[len("x-metadata-") :].lower(): v.decode("utf-8", "replace")
            for k, v in scope.get("headers", ())
            if k.decode("latin-1").lower().startswith("x-metadata-")
        }
        body = _decoded_body(receive, gzip=encoding == "gzip")
        kind = content_type.split(";")[0].strip().lower()
        written: list[dict[str, Any]] = []
        failure: _BadRequest | None = None
        try:
            if kind == "multipart/form-data":
                boundary = _boundary(content_type)
                if not boundary:
                    raise _BadRequest(400, "multipart body without a boundary")
                await self._upload_multipart(body, boundary, params.get("path"), written)
            else:
                target = params.get("path")
                if not target:
                    raise _BadRequest(400, "the path query parameter is required")
                await self._upload_one(body, target, written)
        except _BadRequest as exc:
            failure = exc
        # Read what is left of the body, so the client gets to see the answer.
        with contextlib.suppress(_BadRequest, ClientDisconnected):
            async for _ in body:
                pass
        if failure is not None:
            raise failure
        if not written:
            raise _BadRequest(400, "no file in the request")
        for item in written:
            if metadata:
                self._set_metadata(item["path"], metadata)
                item["metadata"] = metadata
        await send_json(send, 200, written)

    def _open_sink(self, raw: str) -> _FileSink:
        try:
            path = self.resolve(raw)
        except ConnectError as exc:
            raise _BadRequest(400, exc.message) from None
        try:
            return _FileSink(path)
        except IsADirectoryError:
            raise _BadRequest(400, f"path '{path}' is a directory") from None
        except OSError as exc:
            raise _upload_error(exc, path) from None

    @staticmethod
    def _write(sink: _FileSink, data: bytes) -> None:
        try:
            sink.write(data)
        except OSError as exc:
            raise _upload_error(exc, sink.path) from None

    @staticmethod
    def _written(sink: _FileSink) -> dict[str, Any]:
        return {"name": os.path.basename(sink.path), "type": "file", "path": sink.path}

    async def _upload_one(
        self, body: AsyncIterator[bytes], target: str, written: list[dict[str, Any]]
    ) -> None:
        sink = self._open_sink(target)
        try:
            async for chunk in body:
                self._write(sink, chunk)
        finally:
            sink.close()
        written.append(self._written(sink))

    async def _upload_multipart(
        self,
        body: AsyncIterator[bytes],
        boundary: bytes,
        query_path: str | None,
        written: list[dict[str, Any]],
    ) -> None:
        parser = _Multipart(boundary)
        sink: _FileSink | None = None
        skipping = False
        try:
            async for chunk in body:
                for kind, value in parser.feed(chunk):
                    if kind == "part":
                        params = _disposition(value.get("content-disposition", ""))
                        if params.get("name") != "file":
                            skipping = True
                            continue
                        skipping = False
                        target = query_path if query_path and not written else None
                        target = target or params.get("filename")
                        if not target:
                            raise _BadRequest(400, "a file part has no filename (its path)")
                        sink = self._open_sink(target)
                    elif kind == "data" and not skipping and sink is not None:
                        self._write(sink, value)
                    elif kind == "end" and sink is not None:
                        sink.close()
                        written.append(self._written(sink))
                        sink = None
                if parser.done:
                    break
        finally:
            if sink is not None:
                sink.close()
        if not parser.done:
            raise _BadRequest(400, "the multipart body ended early")

    @staticmethod
    def _set_metadata(path: str, metadata: Mapping[str, str]) -> None:
        for key, value in metadata.items():
            with contextlib.suppress(OSError):
                os.setxattr(path, f"user.e2b.{key}", value.encode())


async def _decoded_body(receive: Receive, *, gzip: bool) -> AsyncIterator[bytes]:
    """The request body, gunzipped on the fly when asked; bounded memory per chunk."""
    decompressor = zlib.decompressobj(47) if gzip else None
    async for chunk in iter_body(receive):
        if decompressor is None:
            yield chunk
            continue
        try:
            data = decompressor.decompress(chunk, FILE_CHUNK)
            while True:
                if data:
                    yield data
                if not decompressor.unconsumed_tail:
                    break
                data = decompressor.decompress(decompressor.unconsumed_tail, FILE_CHUNK)
        except zlib.error as exc:
            raise _BadRequest(400, f"the gzip body is corrupt: {exc}") from None
    if decompressor is not None and not decompressor.eof:
        raise _BadRequest(400, "the gzip body is truncated")


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
