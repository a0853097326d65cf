"""The in-sandbox agent: envd, the code interpreter and the gateway's private endpoints.

Run as ``python -m langchain_e2b.local.agent`` with its configuration in ``LANGCHAIN_E2B_AGENT``
and a listening unix socket on the descriptor it names (see docs/local-runtime.md).
"""

from __future__ import annotations

import os
import site
import sys


def _drop_writable_import_paths() -> None:
    """Forget the import paths that sandbox code can write.

    These are its home (the agent's working directory, which ``-m`` puts first on ``sys.path``)
    and the user's site-packages. Modules the agent imports later (the standard library imports
    many on first use) would otherwise be looked up there first, and a file planted by sandbox
    code would run inside the agent, with its socket and every later request.
    """
    cwd = os.getcwd()
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    sys.path[:] = [
        path for path in sys.path if path and os.path.abspath(path) not in (cwd, user_site)
    ]


_drop_writable_import_paths()

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Generator, Mapping  # noqa: E402
from typing import Any  # noqa: E402

import uvicorn  # noqa: E402

from langchain_e2b.local._http import (  # noqa: E402
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    read_json,
    send_error,
    send_json,
    send_response,
)
from langchain_e2b.local.envd import Envd  # noqa: E402

logger = logging.getLogger("langchain_e2b.local.agent")

CONFIG_ENV = "LANGCHAIN_E2B_AGENT"
JUPYTER_PORT = "49999"
INTERPRETER_TEMPLATE = "code-interpreter-v1"
# Seconds an idle connection from the gateway stays open; well above the gateway's pool expiry.
AGENT_KEEP_ALIVE = 300
# How often the agent checks that whoever started it is still there.
PARENT_CHECK_INTERVAL = 1.0
_PR_SET_DUMPABLE = 4


class Agent:
    """The agent's ASGI app: routes requests to envd, the interpreter or the private endpoints.

    Args:
        config: The decoded ``LANGCHAIN_E2B_AGENT`` object (template, home, user, env).
        run_dir: A private directory for the interpreter's kernel files and sockets.
    """

    def __init__(self, config: Mapping[str, Any], *, run_dir: str) -> None:
        self.template = str(config.get("template", "base"))
        home = str(config.get("home") or os.getcwd())
        env = {str(k): str(v) for k, v in dict(config.get("env") or {}).items()}
        self.envd = Envd(home=home, user=str(config.get("user") or "user"), env=env)
        self.interpreter: Any = None
        self.ready = asyncio.Event()
        self.failed: str | None = None
        if self.template == INTERPRETER_TEMPLATE:
            try:
                from langchain_e2b.local.interpreter import Interpreter
            except ImportError as exc:
                self.failed = f"the code interpreter is not available: {exc}"
            else:
                self.interpreter = Interpreter(home=home, env=env, run_dir=run_dir)

    async def start(self) -> None:
        """Start the interpreter's default kernel (if any), then report ready."""
        if self.failed:
            raise RuntimeError(self.failed)
        if self.interpreter is not None:
            try:
                await self.interpreter.start()
            except Exception as exc:
                logger.exception("the code interpreter failed to start")
                self.failed = f"the code interpreter failed to start: {exc}"
                raise
        self.ready.set()

    async def close(self) -> None:
        """Kill every user process and shut the kernels down."""
        await self.envd.close()
        if self.interpreter is not None:
            with contextlib.suppress(Exception):
                await self.interpreter.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path == "/_ready":
                await self._ready(send)
            elif path == "/_init":
                await self._init(scope, receive, send)
            elif self._is_jupyter(scope, path):
                if self.interpreter is None:
                    await send_error(
                        send, 404, f"template '{self.template}' has no code interpreter"
                    )
                else:
                    await self.interpreter(scope, receive, send)
            else:
                await self.envd(scope, receive, send)
        except ClientDisconnected:
            return

    @staticmethod
    def _is_jupyter(scope: Scope, path: str) -> bool:
        if path == "/execute" or path == "/contexts" or path.startswith("/contexts/"):
            return True
        return path == "/health" and header(scope, "e2b-sandbox-port") == JUPYTER_PORT

    async def _ready(self, send: Send) -> None:
        if self.failed:
            await send_error(send, 500, self.failed)
        elif self.ready.is_set():
            await send_json(send, 200, {"ready": True})
        else:
            await send_error(send, 503, "the sandbox is starting")

    async def _init(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await send_error(send, 405, "use POST")
            return
        try:
            body = await read_json(receive)
        except ValueError as exc:
            await send_error(send, 400, f"request body is not valid JSON: {exc}")
            return
        env = body.get("envVars") if isinstance(body, dict) else None
        env = env or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            await send_error(send, 400, "envVars must map strings to strings")
            return
        self.envd.update_env(env)
        if self.interpreter is not None:
            await self.interpreter.update_env(env)
        await send_response(send, 204, b"", content_type=None)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the agent handles SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _run_dir() -> tuple[str, bool]:
    """A short private directory for kernel files; True if the agent made it and removes it."""
    jail_run = "/run/e2b"
    if os.path.isdir(jail_run) and os.access(jail_run, os.W_OK | os.X_OK):
        return jail_run, False
    return tempfile.mkdtemp(prefix="e2b-"), True


async def serve(config: Mapping[str, Any]) -> int:
    """Serve on the inherited listening socket until SIGTERM; return the exit status."""
    run_dir, own_run_dir = _run_dir()
    agent = Agent(config, run_dir=run_dir)
    server = _Server(
        uvicorn.Config(
            agent,
            fd=int(config.get("listen_fd", 3)),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            # Only the gateway connects here, and its pool drops idle connections after
            # ``proxy.IDLE_EXPIRY``: the client must give up on a connection before the agent
            # does, or a request sent just as the agent closed it is lost (a 502 for code that
            # never ran).
            timeout_keep_alive=AGENT_KEEP_ALIVE,
        )
    )
    status = 0

    def stop() -> None:
        # Killing the processes first lets their open streams finish before uvicorn shuts down.
        agent.envd.kill_all()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop)

    async def start() -> None:
        nonlocal status
        try:
            await agent.start()
        except Exception:
            status = 1
            stop()

    async def watch_parent() -> None:
        parent = os.getppid()
        while True:
            await asyncio.sleep(PARENT_CHECK_INTERVAL)
            if os.getppid() != parent:
                break
        logger.warning("the agent's parent went away; stopping")
        stop()

    tasks = [asyncio.create_task(start()), asyncio.create_task(watch_parent())]
    try:
        await server.serve()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await agent.close()
        if own_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    return status


def protect() -> None:
    """Put the agent out of reach of the sandbox's code, which runs as the same uid.

    A process that is not dumpable cannot be ptraced, its ``/proc`` entries (descriptors,
    memory, environment) cannot be opened, and ``pidfd_getfd`` cannot take its descriptors by
    anyone without ``CAP_SYS_PTRACE``, which nothing in a jail has. Without this, sandbox code
    could take the agent's listening socket and answer every later API call itself. Children
    become dumpable again when they exec, so user processes stay ordinary.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        sys.exit(f"the agent could not make itself non-dumpable: {os.strerror(errno)}")


def main() -> None:
    """Entry point of ``python -m langchain_e2b.local.agent``."""
    protect()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        sys.exit(f"{CONFIG_ENV} is not set: the agent is started by the local runtime's gateway")
    try:
        config = json.loads(raw)
    except ValueError as exc:
        sys.exit(f"{CONFIG_ENV} is not valid JSON: {exc}")
    home = config.get("home")
    if home and os.path.isdir(home):
        os.chdir(home)
        _drop_writable_import_paths()
    sys.exit(asyncio.run(serve(config)))


if __name__ == "__main__":
    main()
