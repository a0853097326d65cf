"""Start and stop the local runtime: in the background (``LocalRuntime``) or in the foreground."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from langchain_e2b.local.connections import (
    ConnectionGuard,
    connection_limits,
    raise_descriptor_limit,
)
from langchain_e2b.local.gateway import Gateway
from langchain_e2b.local.jail import Limits

log = logging.getLogger("langchain_e2b.local")

_UNSAFE_WARNING = (
    "WARNING: sandbox isolation is OFF (--unsafe-no-isolation). Code in a sandbox runs as this "
    "user, sees this machine's files and network. Use it only to debug the runtime itself."
)


class LocalRuntime:
    """A local E2B-compatible server that the unmodified E2B SDKs can use.

    Each sandbox runs in its own bubblewrap jail with an IPython kernel. The runtime listens on
    loopback and picks a free port unless told otherwise.

    Example:
        .. code-block:: python

            from e2b_code_interpreter import Sandbox
            from langchain_e2b.local import LocalRuntime

            with LocalRuntime() as runtime:
                sandbox = Sandbox.create(**runtime.connection_options())
                print(sandbox.run_code("1 + 1").text)
                sandbox.kill()

    Args:
        host: Interface to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
        api_key: Key the control plane requires; random when not given.
        allow_internet: Let sandboxes reach the network (off: each has only its own loopback).
        pool_size: Number of ready ``code-interpreter-v1`` sandboxes kept warm.
        data_dir: Where per-sandbox sockets and logs live; a temporary directory by default,
            removed at stop.
        isolation: Run sandboxes in bubblewrap jails. ``False`` is for debugging the runtime
            only: code then runs unconfined as the current user.
        limits: Per-sandbox resource limits.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        allow_internet: bool = False,
        pool_size: int = 2,
        data_dir: str | Path | None = None,
        isolation: bool = True,
        limits: Limits | None = None,
    ) -> None:
        self.host = host
        self.port = port
        # The shape of E2B's own keys: some SDK releases check it before sending a request.
        self.api_key = api_key or "e2b_" + secrets.token_hex(20)
        if api_key is not None and (warning := api_key_warning(api_key)):
            log.warning(warning)
        self.allow_internet = allow_internet
        self.pool_size = pool_size
        self.isolation = isolation
        self.limits = limits
        self._own_data_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.gateway: Gateway | None = None
        self.connections: ConnectionGuard | None = None

    @property
    def url(self) -> str:
        """Base URL of the server (control plane and sandboxes share it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def connection_options(self) -> dict[str, str]:
        """Keyword arguments that point an SDK call (``Sandbox.create(**opts)``) here."""
        return {"api_key": self.api_key, "api_url": self.url, "sandbox_url": self.url}

    def environment(self) -> dict[str, str]:
        """The same settings as environment variables, for programs that read them."""
        return {"E2B_API_URL": self.url, "E2B_SANDBOX_URL": self.url, "E2B_API_KEY": self.api_key}

    # -- foreground / background ---------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # With the protocol named, asyncio sets TCP_NODELAY on accepted connections; without it
        # every response with a body waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        return sock

    def _make_gateway(self) -> Gateway:
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="langchain-e2b-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir.chmod(0o700)
        if not self.isolation:
            log.warning(_UNSAFE_WARNING)
            print(_UNSAFE_WARNING, file=sys.stderr)
        return Gateway(
            api_key=self.api_key,
            data_dir=self._data_dir,
            isolation=self.isolation,
            allow_internet=self.allow_internet,
            pool_size=self.pool_size,
            limits=self.limits,
        )

    async def serve(self, *, on_ready: Any = None) -> None:
        """Serve until stopped (``stop()`` or a signal in the foreground)."""
        sock = self._bind()
        self.gateway = self._make_gateway()
        cap, backlog = connection_limits(raise_descriptor_limit())
        self.connections = ConnectionGuard(cap)
        config = uvicorn.Config(
            self.gateway,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=75,
            http=self.connections.protocol_class(),
            backlog=backlog,
        )
        self._server = uvicorn.Server(config)
        try:
            await self.gateway.start()
            if on_ready is not None:
                on_ready()
            await self._server.serve(sockets=[sock])
        finally:
            await self.gateway.close()
            sock.close()
            self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._own_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def start(self) -> LocalRuntime:
        """Start in a background thread; return once it accepts requests."""
        if self._thread is not None:
            return self
        self._ready.clear()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.serve(on_ready=self._ready.set))
            except BaseException as exc:
                self._error = exc
            finally:
                self._ready.set()
                self._loop.close()

        self._thread = threading.Thread(target=run, name="langchain-e2b-local", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread = None
            raise self._error
        # uvicorn starts listening right after on_ready; wait until it does.
        while self._server is not None and not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the local runtime stopped while starting")
            threading.Event().wait(0.005)
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the server, kill every sandbox and remove its files."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._server is not None:
            self._server.should_exit = True
        thread.join(timeout=60)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalRuntime:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


_default: LocalRuntime | None = None
_default_lock = threading.Lock()


def default_runtime() -> LocalRuntime:
    """The process-wide embedded runtime, started on first use and stopped at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LocalRuntime().start()
        return _default


def api_key_warning(api_key: str) -> str | None:
    """Why ``api_key`` may be refused by some E2B SDK releases, or None if it has E2B's shape."""
    if _KEY_SHAPE.fullmatch(api_key):
        return None
    return (
        "the API key is not 'e2b_' followed by hex digits: E2B SDK releases with the client-side "
        "API key check (ApiClient's validation, e2b 2.25 and later in some releases) refuse "
        "such a key before sending any request. It is accepted here; a key like "
        "e2b_<40 hex digits> works with every release."
    )


_KEY_SHAPE = re.compile(r"e2b_[0-9a-f]+")


def _read_key_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            key = file.readline().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the API key file {path}: {exc.strerror}") from None
    if not key:
        raise ValueError(f"the API key file {path} is empty: put the key on its first line")
    return key


def _describe_limits(limits: Limits, allow_internet: bool) -> str:
    gib = 1024**3

    def size(value: int) -> str:
        return f"{value / gib:g} GiB" if value >= gib else f"{value / 1024**2:g} MiB"

    return (
        f"Per-sandbox limits: memory {size(limits.memory_bytes)}, {limits.cpus:g} CPUs, "
        f"{limits.processes} processes, disk {size(limits.disk_bytes)}; "
        f"internet {'allowed' if allow_internet else 'off'}."
    )


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    api_key_file: str | None = None,
    allow_internet: bool = False,
    pool: int = 2,
    data_dir: str | None = None,
    unsafe_no_isolation: bool = False,
    memory: int | None = None,
    cpus: float | None = None,
    processes: int | None = None,
    disk: int | None = None,
) -> None:
    """Run the local runtime in the foreground until Ctrl-C or SIGTERM (``local serve``).

    The API key is ``api_key``, else the first line of ``api_key_file``, else ``E2B_API_KEY``
    from the environment, else random. ``memory``, ``cpus``, ``processes`` and ``disk`` override
    the fields of :class:`~langchain_e2b.local.jail.Limits` (bytes, cores, count, bytes).

    Raises:
        ValueError: If the API key file cannot be read or is empty.
    """
    if api_key is None and api_key_file is not None:
        api_key = _read_key_file(api_key_file)
    api_key = api_key or os.environ.get("E2B_API_KEY") or None
    default = Limits()
    limits = dataclasses.replace(
        default,
        memory_bytes=default.memory_bytes if memory is None else memory,
        cpus=default.cpus if cpus is None else cpus,
        processes=default.processes if processes is None else processes,
        disk_bytes=default.disk_bytes if disk is None else disk,
    )
    runtime = LocalRuntime(
        host=host,
        port=port,
        api_key=api_key,
        allow_internet=allow_internet,
        pool_size=pool,
        data_dir=data_dir,
        isolation=not unsafe_no_isolation,
        limits=limits,
    )
    key_warning = api_key_warning(runtime.api_key)

    def announce() -> None:
        print(f"langchain-e2b local runtime listening on {runtime.url}")
        print(_describe_limits(limits, allow_internet))
        if key_warning:
            print(f"Warning: {key_warning}", file=sys.stderr)
        print("Point the E2B SDK at it with:")
        for key, value in runtime.environment().items():
            print(f"export {key}={value}")
        print("Press Ctrl-C to stop it and every sandbox.", flush=True)

    def terminate(signum: int, frame: object) -> None:
        # SIGTERM (what systemd, Docker and CI send) stops the runtime as cleanly as Ctrl-C:
        # every sandbox killed, its files and cgroups removed. Later ones must not cut that
        # cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(runtime.serve(on_ready=announce))
    finally:
        signal.signal(signal.SIGTERM, previous)
