"""The in-sandbox code interpreter: E2B's ``/execute`` and ``/contexts`` API over Jupyter kernels.

Each code context is one Jupyter kernel process (``kernels``): IPython for Python,
``bash_kernel`` for bash, and Deno's kernel for JavaScript and TypeScript. This module serves
the HTTP routes and relays each execution's output. Only the default Python context starts
with the sandbox; the others start when first asked for, so a sandbox that never runs
JavaScript or bash pays nothing for them. ``/execute`` streams newline-delimited JSON as the
kernel produces it (see shared/e2b-protocol.md §5). Executions on one context run one at a
time; a client that goes away interrupts its execution, and a kernel that ignores the
interrupt for a few seconds is restarted; a kernel that dies is restarted; the client is told
when state was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from langchain_e2b.local._common import resolve_cwd
from langchain_e2b.local._http import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    read_json,
    send_chunk,
    send_json,
    send_response,
    start_stream,
    wait_disconnect,
)
from langchain_e2b.local.kernels import (
    ENV_NAME,
    FLAVOURS,
    SUPPORTED_LANGUAGES,
    Kernel,
    check_env_names,
    env_code,
    find_deno,
    missing_requirement,
    next_message,
    normalize_language,
    start_failure,
    unsupported_language,
    write_kernel_spec,
)

logger = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 5.0
# After a client disconnect (the SDK's timeout, or a caller that went away), the kernel is
# interrupted at once and again this often while the code runs on...
INTERRUPT_RETRY = 1.0
# ...and restarted (its state lost) if it still has not stopped after this long: code that
# catches KeyboardInterrupt or blocks SIGINT would otherwise hold the context, and every later
# execution queued behind it, for as long as it likes.
INTERRUPT_GRACE = 3.0
# Stream text longer than this goes out as several lines, so no single line gets huge.
MAX_TEXT_CHUNK = 1 << 20
# Deno may publish a cell's last messages just after it reports idle; wait this long for more.
_LINGER = 0.05

_MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}

_STATE_LOST = "all variables, imports and other state from earlier executions were lost"


_DENO_ERROR_AT = re.compile(r"\s*at file://\S*?:(\d+):(\d+)\s*$")
_DENO_ERROR_INLINE = re.compile(r"(.*?)\s+at file://\S*?:(\d+):(\d+)\s*")


def _deno_syntax_error(deno: str, code: str, language: str) -> dict[str, Any] | None:
    """Parse ``code`` without running it (``deno fmt``); the error line if it does not parse.

    Deno's kernel answers a cell that does not parse with a bare "Execution failed"; its own
    formatter says what and where.
    """
    try:
        done = subprocess.run(
            [deno, "fmt", "--ext", "ts" if language == "typescript" else "js", "-"],
            input=code.encode(),
            capture_output=True,
            timeout=10,
            env={**os.environ, "NO_COLOR": "1", "RUST_BACKTRACE": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode == 0:
        return None
    text = done.stderr.decode("utf-8", "replace").split("\nStack backtrace:")[0].strip()
    lines = text.splitlines()
    if not lines or not lines[0].startswith("error: "):
        return None
    head = lines[0][len("error: ") :]
    where = ""
    # Older releases put the position on the first line: "<message> at file:///...:2:11".
    inline = _DENO_ERROR_INLINE.fullmatch(head)
    if inline:
        head = inline.group(1)
        where = f"line {inline.group(2)}, column {inline.group(3)}"
    name, _, message = head.partition(": ")
    if not message or not name.isidentifier():
        name, message = "SyntaxError", head
    body = []
    for line in lines[1:]:
        found = _DENO_ERROR_AT.fullmatch(line)
        if found:
            where = f"line {found.group(1)}, column {found.group(2)}"
        else:
            body.append(line)
    value = f"{message} ({where})" if where else message
    traceback = "\n".join([*body, f"{name}: {value}"]).strip("\n")
    return _error_line(name, value, traceback)


def _timestamp(header: Mapping[str, Any]) -> str:
    date = header.get("date")
    if isinstance(date, datetime):
        return date.isoformat()
    if isinstance(date, str) and date:
        return date
    return datetime.now().astimezone().isoformat()


def _result_line(data: Mapping[str, Any], *, is_main_result: bool) -> dict[str, Any]:
    line: dict[str, Any] = {"type": "result"}
    extra: dict[str, Any] = {}
    for mime, value in data.items():
        field = _MIME_FIELDS.get(mime)
        if field is None:
            extra[mime] = value
        else:
            line[field] = value
    text = line.get("text")
    # A string result is shown without its quotes, as E2B's server does.
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        line["text"] = text[1:-1]
    if extra:
        line["extra"] = extra
    line["is_main_result"] = is_main_result
    return line


def _error_line(name: str, value: str, traceback: str = "") -> dict[str, Any]:
    return {"type": "error", "name": name, "value": value, "traceback": traceback}


def _validate_env(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise ValueError("env_vars must be an object of strings")
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"invalid environment variable name: {key!r}")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"environment variable {key} must be a string without NUL bytes")
    return dict(env)


class _Stream:
    """The NDJSON body of one ``/execute`` response."""

    def __init__(self, send: Send, disconnected: asyncio.Event) -> None:
        self._send = send
        self._disconnected = disconnected
        self._last = time.monotonic()

    async def emit(self, obj: Mapping[str, Any]) -> None:
        if self._disconnected.is_set():
            return
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        try:
            await send_chunk(self._send, data.encode("utf-8", "replace") + b"\n")
        except Exception:
            # A send to a client that has gone is a disconnect, whatever the server raises.
            self._disconnected.set()
        self._last = time.monotonic()

    async def keepalive(self) -> None:
        if time.monotonic() - self._last >= KEEPALIVE_INTERVAL:
            await self.emit({"type": "keepalive"})

    async def finish(self) -> None:
        await self.emit({"type": "end_of_execution"})
        if not self._disconnected.is_set():
            with contextlib.suppress(Exception):
                await send_chunk(self._send, b"", more=False)


class Interpreter:
    """E2B's code-interpreter server (``/execute``, ``/contexts``) as an ASGI app.

    Args:
        home: The sandbox user's home: the default working directory of contexts.
        env: The complete base environment of kernels (the agent's own is never inherited).
        run_dir: A private directory for kernel connection files and ipc sockets. Unix socket
            paths are limited to about 100 bytes, so keep it short.
    """

    def __init__(self, *, home: str, env: dict[str, str], run_dir: str) -> None:
        self._home = home
        self._env = dict(env)
        self._run_dir = run_dir
        self._contexts: dict[str, Kernel] = {}
        # The context ``/execute`` uses for a language when it names no context.
        self._defaults: dict[str, str] = {}
        self._default_locks: dict[str, asyncio.Lock] = {}
        self._specs_written: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the default Python context; return once it can execute code."""
        await self._default("python")

    async def update_env(self, env: dict[str, str]) -> None:
        """Merge global environment variables into running kernels and future ones."""
        env = _validate_env(env)
        self._env.update(env)
        if not env:
            return
        for kernel in list(self._contexts.values()):
            # Queued on the kernel's shell channel: it runs after any execution in progress and
            # before any later one, which is the order the caller expects.
            with contextlib.suppress(Exception):
                if not kernel.closed and await kernel.is_alive():
                    usable = {
                        k: v
                        for k, v in env.items()
                        if kernel.language != "bash" or ENV_NAME.fullmatch(k)
                    }
                    kernel.send(env_code(kernel.language, usable, push=None), silent=True)

    async def close(self) -> None:
        """Shut every kernel down."""
        kernels = list(self._contexts.values())
        self._contexts.clear()
        self._defaults.clear()
        await asyncio.gather(*(k.stop() for k in kernels), return_exceptions=True)

    # -- contexts -------------------------------------------------------------------------------

    def _deno(self) -> str | None:
        return find_deno(self._env.get("PATH"))

    def _missing(self, language: str) -> str | None:
        return missing_requirement(language, self._deno())

    def _write_kernel_spec(self, language: str) -> None:
        flavour = FLAVOURS[language]
        if flavour.kernel_name not in self._specs_written:
            write_kernel_spec(self._run_dir, flavour, self._deno())
            self._specs_written.add(flavour.kernel_name)

    async def _create(self, language: str, cwd: str) -> Kernel:
        flavour = FLAVOURS[language]
        self._write_kernel_spec(language)
        kernel = Kernel(
            context_id=str(uuid.uuid4()),
            language=language,
            cwd=cwd,
            run_dir=self._run_dir,
            deno=self._deno() if flavour.linger else None,
        )
        self._contexts[kernel.id] = kernel
        try:
            await kernel.start(self._env)
        except BaseException:
            self._contexts.pop(kernel.id, None)
            await kernel.stop()
            raise
        return kernel

    async def _default(self, language: str) -> Kernel:
        lock = self._default_locks.setdefault(language, asyncio.Lock())
        async with lock:
            kernel = self._contexts.get(self._defaults.get(language, ""))
            if kernel is None:
                kernel = await self._create(language, self._home)
                self._defaults[language] = kernel.id
            return kernel

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        method = scope["method"]
        parts = [p for p in scope["path"].split("/") if p]
        try:
            if parts == ["execute"] and method == "POST":
                await self._execute(receive, send)
            elif parts == ["contexts"] and method == "GET":
                await send_json(send, 200, [k.as_json() for k in self._contexts.values()])
            elif parts == ["contexts"] and method == "POST":
                await self._create_context(receive, send)
            elif len(parts) == 2 and parts[0] == "contexts" and method == "DELETE":
                await self._delete_context(parts[1], send)
            elif len(parts) == 3 and parts[0] == "contexts" and parts[2] == "restart":
                if method != "POST":
                    await _text(send, 405, "Method not allowed")
                else:
                    await self._restart_context(parts[1], send)
            elif parts == ["health"]:
                await send_json(send, 200, "OK")
            else:
                await _text(send, 404, "Not found")
        except ClientDisconnected:
            return

    async def _create_context(self, receive: Receive, send: Send) -> None:
        try:
            body = await read_json(receive)
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            language = normalize_language(body.get("language"))
            if language not in SUPPORTED_LANGUAGES:
                raise ValueError(unsupported_language(language))
            missing = self._missing(language)
            if missing:
                raise ValueError(missing)
            cwd = resolve_cwd(self._home, body.get("cwd"))
        except ValueError as exc:  # JSONDecodeError included
            await _text(send, 400, str(exc))
            return
        try:
            kernel = await self._create(language, cwd)
        except Exception as exc:
            logger.exception("starting a kernel failed")
            await _text(send, 500, start_failure(language, exc))
            return
        await send_json(send, 200, kernel.as_json())

    async def _delete_context(self, context_id: str, send: Send) -> None:
        kernel = self._contexts.pop(context_id, None)
        if kernel is None:
            await _text(send, 404, f"Context {context_id} not found")
            return
        if self._defaults.get(kernel.language) == context_id:
            del self._defaults[kernel.language]
        await kernel.stop()
        await send_response(send, 204)

    async def _restart_context(self, context_id: str, send: Send) -> None:
        kernel = self._contexts.get(context_id)
        if kernel is None:
            await _text(send, 404, f"Context {context_id} not found")
            return
        try:
            await kernel.restart(self._env)
        except Exception as exc:
            logger.exception("restarting a kernel failed")
            await _text(send, 500, f"Failed to restart context {context_id}: {exc}")
            return
        await send_response(send, 204)

    async def _execute(self, receive: Receive, send: Send) -> None:
        try:
            body = await read_json(receive)
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            code = body.get("code")
            if not isinstance(code, str):
                raise ValueError("code must be a string")
            context_id = body.get("context_id")
            language = body.get("language")
            if context_id and language:
                raise ValueError("Only one of context_id or language can be provided")
            env_vars = _validate_env(body.get("env_vars"))
        except ValueError as exc:
            await _text(send, 400, str(exc))
            return
        if context_id:
            found = self._contexts.get(str(context_id))
            if found is None:
                await _text(send, 404, f"Context {context_id} not found")
                return
            kernel = found
        else:
            normalized = normalize_language(language)
            if normalized not in SUPPORTED_LANGUAGES:
                await _text(send, 400, unsupported_language(normalized))
                return
            missing = self._missing(normalized)
            if missing:
                await _text(send, 400, missing)
                return
            try:
                kernel = await self._default(normalized)
            except Exception as exc:
                logger.exception("starting the default %s kernel failed", normalized)
                await _text(send, 500, start_failure(normalized, exc))
                return
        try:
            check_env_names(kernel.language, env_vars)
        except ValueError as exc:
            await _text(send, 400, str(exc))
            return

        await start_stream(send, 200, "application/x-ndjson")
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(wait_disconnect(receive, disconnected))
        stream = _Stream(send, disconnected)
        try:
            await self._run(kernel, code, env_vars, stream, disconnected)
        finally:
            watcher.cancel()
        await stream.finish()

    # -- execution ------------------------------------------------------------------------------

    async def _acquire(
        self, lock: asyncio.Lock, stream: _Stream, disconnected: asyncio.Event
    ) -> bool:
        """Wait for ``lock``, keeping the response alive; False if the client left first."""
        if not lock.locked():
            await lock.acquire()
            return True
        acquire = asyncio.ensure_future(lock.acquire())
        gone = asyncio.ensure_future(disconnected.wait())
        acquired = False
        try:
            while True:
                done, _ = await asyncio.wait(
                    {acquire, gone}, timeout=KEEPALIVE_INTERVAL, return_when="FIRST_COMPLETED"
                )
                if acquire in done:
                    acquired = True
                    return True
                if gone in done:
                    return False
                await stream.keepalive()
        finally:
            gone.cancel()
            if not acquired:
                if acquire.done() and not acquire.cancelled():
                    lock.release()
                else:
                    acquire.cancel()

    async def _run(
        self,
        kernel: Kernel,
        code: str,
        env_vars: dict[str, str],
        stream: _Stream,
        disconnected: asyncio.Event,
    ) -> None:
        if not await self._acquire(kernel.lock, stream, disconnected):
            return
        try:
            if kernel.closed:
                await stream.emit(
                    _error_line("ContextNotFound", f"Context {kernel.id} was removed.")
                )
                return
            if not await kernel.is_alive():
                notice = self._death_message(kernel, "had stopped")
                failure = await self._recover(kernel, kernel.generation)
                if failure is not None:
                    await stream.emit(_error_line("KernelDied", failure))
                    return
                kernel.notice = notice
            if kernel.notice:
                notice, kernel.notice = kernel.notice, None
                await stream.emit(
                    {"type": "stderr", "text": notice + "\n", "timestamp": _timestamp({})}
                )
            generation = kernel.generation
            await kernel.drain_replies()
            if env_vars:
                kernel.send(env_code(kernel.language, env_vars, push=True), silent=True)
            msg_id = kernel.send(code, silent=False)
            try:
                await self._relay(kernel, generation, msg_id, code, stream, disconnected)
            finally:
                if env_vars and kernel.generation == generation and not kernel.closed:
                    with contextlib.suppress(Exception):
                        kernel.send(env_code(kernel.language, env_vars, push=False), silent=True)
        finally:
            kernel.lock.release()

    @staticmethod
    def _death_message(kernel: Kernel, what: str) -> str:
        what = f"The {kernel.flavour.display} kernel {what}"
        status = kernel.exit_status()
        detail = ""
        if status is not None and status < 0:
            with contextlib.suppress(ValueError):
                detail = f" (killed by {signal.Signals(-status).name}"
                if -status == signal.SIGKILL:
                    detail += ", often a sign it ran out of memory"
                detail += ")"
        elif status is not None:
            detail = f" (exit status {status})"
        return f"{what}{detail} and was restarted: {_STATE_LOST}."

    async def _recover(self, kernel: Kernel, generation: int) -> str | None:
        """Restart a kernel that died (unless someone already did); say why if that fails."""
        if kernel.generation != generation or kernel.closed:
            return None
        try:
            await kernel.restart(self._env)
        except Exception as exc:
            logger.exception("restarting a dead kernel failed")
            return f"Restarting the {kernel.flavour.display} kernel failed: {exc}"
        return None

    async def _relay(
        self,
        kernel: Kernel,
        generation: int,
        msg_id: str,
        code: str,
        stream: _Stream,
        disconnected: asyncio.Event,
    ) -> None:
        """Forward the kernel's output for ``msg_id`` until the kernel is idle again."""
        errored = False
        interrupted_at: float | None = None
        last_interrupt = 0.0
        client = kernel.client
        while True:
            if kernel.closed:
                await stream.emit(
                    _error_line("ContextNotFound", "The context was removed during execution.")
                )
                return
            if kernel.generation != generation:
                await stream.emit(
                    _error_line(
                        "ContextRestarting",
                        f"The context was restarted during execution: {_STATE_LOST}.",
                    )
                )
                return
            now = time.monotonic()
            if disconnected.is_set():
                if interrupted_at is None:
                    interrupted_at = last_interrupt = now
                    await kernel.interrupt()
                elif now - interrupted_at >= INTERRUPT_GRACE:
                    kernel.notice = (
                        "The previous execution did not stop within"
                        f" {INTERRUPT_GRACE:g} s of being interrupted, so the kernel was"
                        f" restarted: {_STATE_LOST}."
                    )
                    logger.info("context %s ignored an interrupt; restarting it", kernel.id)
                    await self._recover(kernel, generation)
                    return
                elif now - last_interrupt >= INTERRUPT_RETRY:
                    last_interrupt = now
                    await kernel.interrupt()
            # Wake up for the disconnect only until it has happened: after it, the kernel's
            # messages are still read, to see it go idle.
            msg = await next_message(client, None if disconnected.is_set() else disconnected)
            if msg is None:
                if kernel.generation == generation and not await kernel.is_alive():
                    message = self._death_message(kernel, "died during execution")
                    if disconnected.is_set():
                        kernel.notice = message
                    await stream.emit(_error_line("KernelDied", message))
                    failure = await self._recover(kernel, generation)
                    if failure is not None:
                        await stream.emit(
                            {"type": "stderr", "text": failure + "\n", "timestamp": _timestamp({})}
                        )
                    return
                await stream.keepalive()
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            errored = errored or msg.get("msg_type") == "error"
            if await self._forward(kernel, msg, stream):
                if kernel.flavour.linger:
                    await self._linger(kernel, msg_id, code, stream, errored=errored)
                return

    async def _linger(
        self, kernel: Kernel, msg_id: str, code: str, stream: _Stream, *, errored: bool
    ) -> None:
        """Finish a Deno execution: its late output, and the error only its reply tells."""
        reply = await kernel.reply(msg_id, timeout=1.0)
        while True:
            late = await next_message(kernel.client, timeout=_LINGER)
            if late is None:
                break
            if late.get("parent_header", {}).get("msg_id") == msg_id:
                errored = errored or late.get("msg_type") == "error"
                await self._forward(kernel, late, stream)
        if errored or not reply or reply.get("status") != "error":
            return
        line = None
        if kernel.deno:
            line = await asyncio.to_thread(_deno_syntax_error, kernel.deno, code, kernel.language)
        if line is None:
            line = _error_line(
                str(reply.get("ename") or "Error"),
                str(reply.get("evalue") or "Execution failed"),
                "\n".join(str(x) for x in reply.get("traceback") or []),
            )
        await stream.emit(line)

    async def _forward(self, kernel: Kernel, msg: Mapping[str, Any], stream: _Stream) -> bool:
        """Send one kernel message on; True when it ends the execution."""
        kind = msg.get("msg_type")
        content = msg.get("content", {})
        if kind == "status":
            return bool(content.get("execution_state") == "idle")
        if kind == "execute_input":
            await stream.emit(
                {"type": "number_of_executions", "execution_count": content.get("execution_count")}
            )
        elif kind == "stream":
            name = "stderr" if content.get("name") == "stderr" else "stdout"
            text = str(content.get("text", ""))
            stamp = _timestamp(msg.get("header", {}))
            for start in range(0, max(len(text), 1), MAX_TEXT_CHUNK):
                chunk = text[start : start + MAX_TEXT_CHUNK]
                if chunk:
                    await stream.emit({"type": name, "text": chunk, "timestamp": stamp})
        elif kind in ("execute_result", "display_data"):
            data = content.get("data") or {}
            if data:
                await stream.emit(_result_line(data, is_main_result=kind == "execute_result"))
        elif kind == "error":
            name = str(content.get("ename") or "Error")
            value = str(content.get("evalue", ""))
            if kernel.language == "bash" and value.isdigit():
                # bash_kernel reports a failing last command by its exit status alone.
                value = f"exit status {value}"
            await stream.emit(
                _error_line(
                    name, value, "\n".join(str(line) for line in content.get("traceback", []))
                )
            )
        return False


async def _text(send: Send, status: int, message: str) -> None:
    await send_response(send, status, message.encode(), content_type="text/plain; charset=utf-8")
