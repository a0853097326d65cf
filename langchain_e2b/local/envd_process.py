"""envd's process service: start, stream, signal and feed the sandbox's processes.

Each process's output is read from raw non-blocking descriptors and fanned out to every stream
attached to it (``Start`` and any later ``Connect``), with backpressure to the process.

A stream whose client reads slower than the process prints sends the reads queued for it together,
as one data message of up to :data:`MAX_DATA_MESSAGE` bytes; output that arrives slower than it is
sent still goes out read by read, at once. E2B's envd sends one message per read of at most
32 KiB; the SDKs take any message size.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Mapping
from typing import Any

from langchain_e2b.local import _connect as rpc
from langchain_e2b.local._common import resolve_cwd
from langchain_e2b.local._connect import ConnectError, Stream, field
from langchain_e2b.local._http import Receive, Scope, Send

# After a process exits, its output pipes are read until they fall quiet for this long: a
# background child (``cmd &``) may hold them open for ever, and the command must still end.
DRAIN_IDLE = 0.2
# Chunks queued per stream subscriber before the reader waits (backpressure to the process).
SUBSCRIBER_QUEUE = 64
READ_CHUNK = 64 * 1024
# Most output bytes in one data message (a little more: the read that crosses it). Every message
# costs the gateway, the SDK and the caller's output callback a fixed amount of work, and 100 MB
# printed at full speed went out as 1,600 messages of one read each. Larger messages were no
# faster and grew the caller more while it parsed them (1 MiB: 11 MB, 256 KiB: 5 MB).
MAX_DATA_MESSAGE = 256 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


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


def _data_frame(kind: str, chunks: list[bytes]) -> bytes:
    """The framed message ``{"event": {"data": {kind: <base64 of chunks>}}}``.

    The same bytes :func:`~langchain_e2b.local._connect.envelope` makes, written directly: base64
    needs no JSON escaping, and ``json.dumps`` scanning each encoded string was about 70% of the
    time this service spent framing output.
    """
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoded = binascii.b2a_base64(data, newline=False)
    head = b'{"event":{"data":{"' + kind.encode() + b'":"'
    tail = b'"}}}'
    size = struct.pack(">BI", 0, len(head) + len(encoded) + len(tail))
    return b"".join((size, head, encoded, tail))


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


class Processes:
    """The ``process.Process`` RPCs over the processes started here.

    Args:
        home: The default working directory.
        env: The base environment of every process (the agent's own is never passed on).
    """

    def __init__(self, *, home: str, env: Mapping[str, str]) -> None:
        self.home = home
        self.base_env = dict(env)
        self.global_env: dict[str, str] = {}
        self._procs: dict[int, _Process] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = False

    def update_env(self, env: Mapping[str, str]) -> None:
        """Merge global environment variables into the environment of later processes."""
        self.global_env.update(env)

    def kill_all(self) -> None:
        """Kill every process group started here: the sandbox is stopping.

        Their open streams end with ``unavailable`` rather than an exit status, as on E2B when a
        sandbox is killed under a running command (the SDK then reports the sandbox gone).
        """
        self.stopping = True
        for proc in list(self._procs.values()):
            proc.signal(signal.SIGKILL)

    async def close(self) -> None:
        """Kill every process group and wait (boundedly) for their streams to end."""
        self.kill_all()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def find(self, request: Mapping[str, Any]) -> _Process:
        """The process a request selects by ``pid`` or ``tag``."""
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
        try:
            cwd = resolve_cwd(self.home, config.get("cwd"))
        except ValueError as exc:
            raise ConnectError("invalid_argument", str(exc)) from None
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

    async def start(self, request: dict[str, Any], stream: Stream) -> None:
        """Start: run a process and stream its output until it ends."""
        process = await self._spawn(request)
        queue = process.subscribe()
        self._launch(process)
        if stream.timeout_ms is not None:
            process.set_deadline(stream.timeout_ms / 1000)
        await self._relay(process, queue, stream)

    async def connect(self, request: dict[str, Any], stream: Stream) -> None:
        """Connect: stream a running process's output from now until it ends."""
        process = self.find(request)
        queue = process.subscribe()
        relay = self._relay(process, queue, stream)
        if stream.timeout_ms is None:
            await relay
            return
        try:
            await asyncio.wait_for(relay, stream.timeout_ms / 1000)
        except asyncio.TimeoutError:
            raise ConnectError("deadline_exceeded", "the stream's deadline expired") from None

    async def _relay(self, process: _Process, queue: asyncio.Queue[_Item], stream: Stream) -> None:
        held: _Item | None = None  # taken from the queue but not part of the last message
        try:
            await stream.send({"event": {"start": {"pid": process.pid}}})
            while True:
                if held is not None:
                    (kind, payload), held = held, None
                elif not queue.empty():
                    kind, payload = queue.get_nowait()
                else:
                    try:
                        kind, payload = await asyncio.wait_for(queue.get(), stream.keepalive)
                    except asyncio.TimeoutError:
                        await stream.send({"event": {"keepalive": {}}})
                        continue
                if kind != "end":
                    # Reads already waiting for this stream go out with this one: consecutive
                    # output of the same stream, so the order of stdout and stderr is kept.
                    chunks = [payload]
                    size = len(payload)
                    while size < MAX_DATA_MESSAGE and not queue.empty():
                        held = queue.get_nowait()
                        if held[0] != kind:
                            break
                        chunks.append(held[1])
                        size += len(held[1])
                        held = None
                    await stream.send_frame(_data_frame(kind, chunks))
                    continue
                if self.stopping:
                    raise ConnectError(
                        "unavailable",
                        "the sandbox was stopped, so the connection to it ended before the "
                        "stream completed",
                    )
                if process.timed_out:
                    raise ConnectError(
                        "deadline_exceeded",
                        f"process {process.pid} was killed: it ran past its timeout",
                    )
                await stream.send({"event": {"end": payload}})
                return
        finally:
            process.unsubscribe(queue)

    async def list_processes(self, request: dict[str, Any]) -> dict[str, Any]:
        """List: the running processes."""
        return {"processes": [p.info() for p in self._procs.values()]}

    async def send_input(self, request: dict[str, Any]) -> dict[str, Any]:
        """SendInput: write to a process's stdin or terminal."""
        process = self.find(request)
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

    async def stream_input(self, scope: Scope, receive: Receive, send: Send) -> None:
        """StreamInput (client stream): write each message's input to the selected process."""
        error: ConnectError | None = None
        process: _Process | None = None
        try:
            async for message in rpc.iter_stream_requests(scope, receive):
                if "start" in message:
                    start = message["start"] or {}
                    process = self.find(start if isinstance(start, dict) else {})
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

    async def send_signal(self, request: dict[str, Any]) -> dict[str, Any]:
        """SendSignal: signal a process's whole group."""
        process = self.find(request)
        process.signal(_parse_signal(field(request, "signal")))
        return {}

    async def close_stdin(self, request: dict[str, Any]) -> dict[str, Any]:
        """CloseStdin: end a process's input."""
        await self.find(request).close_stdin()
        return {}

    async def update(self, request: dict[str, Any]) -> dict[str, Any]:
        """Update: resize a process's terminal."""
        process = self.find(request)
        pty_config = field(request, "pty")
        if isinstance(pty_config, dict):
            size = pty_config.get("size") or {}
            process.resize(int(size.get("cols") or 80), int(size.get("rows") or 24))
        return {}
