"""envd in the jail: E2B's process and filesystem RPCs (Connect JSON), ``/files``, ``/health``.

This module routes requests; the services live beside it: ``envd_process`` (processes),
``envd_fs`` (filesystem RPCs and watchers), ``envd_files`` (``/files``), with the Connect codec
in ``_connect``. Everything runs with the sandbox's own privileges: the jail, not this code, is
the security boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from langchain_e2b.local import _connect as rpc
from langchain_e2b.local._connect import ConnectError, Stream
from langchain_e2b.local._http import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    send_error,
    send_response,
    wait_disconnect,
)
from langchain_e2b.local.envd_files import Files
from langchain_e2b.local.envd_fs import Filesystem
from langchain_e2b.local.envd_process import Processes

logger = logging.getLogger(__name__)

_Unary = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
_SyncUnary = Callable[[dict[str, Any]], dict[str, Any]]
_StreamHandler = Callable[[dict[str, Any], Stream], Coroutine[Any, Any, None]]


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
        self.fs = Filesystem(home=self.home, user=user)
        self.processes = Processes(home=self.home, env=env)
        self.files = Files(self.fs.resolve)
        procs, fs = self.processes, self.fs
        self._unary: dict[str, _Unary] = {
            "/process.Process/List": procs.list_processes,
            "/process.Process/SendInput": procs.send_input,
            "/process.Process/SendSignal": procs.send_signal,
            "/process.Process/CloseStdin": procs.close_stdin,
            "/process.Process/Update": procs.update,
            "/filesystem.Filesystem/CreateWatcher": fs.create_watcher,
            "/filesystem.Filesystem/GetWatcherEvents": fs.get_watcher_events,
            "/filesystem.Filesystem/RemoveWatcher": fs.remove_watcher,
        }
        # Filesystem calls that may block on the disk run in a worker thread.
        self._sync: dict[str, _SyncUnary] = {
            "/filesystem.Filesystem/Stat": fs.stat,
            "/filesystem.Filesystem/MakeDir": fs.make_dir,
            "/filesystem.Filesystem/Move": fs.move,
            "/filesystem.Filesystem/ListDir": fs.list_dir,
            "/filesystem.Filesystem/Remove": fs.remove,
        }
        self._streams: dict[str, _StreamHandler] = {
            "/process.Process/Start": procs.start,
            "/process.Process/Connect": procs.connect,
            "/filesystem.Filesystem/WatchDir": fs.watch_dir,
        }

    def resolve(self, path: Any) -> str:
        """Resolve a path the way envd does: relative to home, ``~`` is home."""
        return self.fs.resolve(path)

    def update_env(self, env: Mapping[str, str]) -> None:
        """Merge global environment variables into the environment of later processes."""
        self.processes.update_env(env)

    def kill_all(self) -> None:
        """Kill every process group: the sandbox is stopping (open streams end unavailable)."""
        self.processes.kill_all()

    async def close(self) -> None:
        """Kill every process group and stop every watcher."""
        self.fs.close()
        await self.processes.close()

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
                await self.files(scope, receive, send)
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
            await self.processes.stream_input(scope, receive, send)
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
        stream = Stream(send, scope)
        error: ConnectError | None = None
        try:
            request = await rpc.read_stream_request(scope, receive)
        except ConnectError as exc:
            await rpc.start_stream(send)
            await rpc.finish_stream(send, exc)
            return
        await rpc.start_stream(send)
        work = asyncio.create_task(handler(request, stream))
        gone = asyncio.create_task(wait_disconnect(receive))
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
