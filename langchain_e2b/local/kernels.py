"""Kernels of the code interpreter: one Jupyter kernel process per code context.

Python contexts run IPython (``ipykernel``), bash contexts ``bash_kernel``, both over ``ipc://``
sockets in the agent's private run directory; JavaScript and TypeScript contexts run Deno's
kernel (``deno jupyter``), which speaks TCP only, on loopback ports. This module knows how each
language's kernel is found, described (its kernel spec), launched, restarted and stopped, and
how code that sets environment variables is written in each language. ``interpreter`` serves
the HTTP API over these kernels.

Deno's kernel listens on loopback TCP ports, and its messages are signed with a key only this
agent holds, so no other process can run code in it. A jail without its own network namespace
(internet access allowed) shares the host's loopback: there, a local process that finds the
ports could read a JavaScript context's output (a Jupyter output socket does not authenticate
readers). Python and bash contexts use ``ipc://`` sockets in the agent's private directory and
have no such gap.

The agent speaks the Jupyter messaging protocol to its kernels itself (ZeroMQ sockets, HMAC-SHA256
signed JSON frames) and launches them with ``subprocess`` as ``jupyter_client``'s kernel manager
does (own session, ``JPY_PARENT_PID``, closed stdin): the agent needs a small part of
``jupyter_client``, whose imports (traitlets, tornado, dateutil and its own modules) made up 6 MB
of every sandbox's agent (RSS 39.8 -> 33.5 MB, 5.2 MB of it anonymous memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from langchain_e2b.local._common import deno_package_binary

logger = logging.getLogger("langchain_e2b.local.kernels")

# E2B's language names, as the SDK's ``RunCodeLanguage`` spells them.
SUPPORTED_LANGUAGES = ("python", "javascript", "typescript", "bash")
_ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "ts": "typescript",
    "deno": "typescript",
    "sh": "bash",
    "shell": "bash",
}
# Languages E2B's code-interpreter template offers that this runtime has no kernel for.
_NOT_SHIPPED = {
    "r": "R (E2B's template runs it with IRkernel, which needs an R installation)",
    "java": "Java (E2B's template runs it with IJava, which needs a JDK)",
}
# How often the relay loop looks up from the kernel's output to check the client and the kernel.
POLL_INTERVAL = 0.5
KERNEL_READY_TIMEOUT = 120.0
# Kernel messages read ahead of the HTTP client (each is up to ~0.05 s of a cell's output).
IOPUB_BACKLOG = 8

_KERNEL_NAME = "langchain-e2b-python"
_DENO_KERNEL_NAME = "langchain-e2b-deno"
_BASH_KERNEL_NAME = "langchain-e2b-bash"
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_STARTUP_MODULE = "_langchain_e2b_kernel"
_STARTUP_FILE = Path(__file__).with_name("_kernel_startup.py")


def _loader_source() -> str:
    # Installs the formatters of _kernel_startup.py (loaded by the launcher), leaving no names
    # behind in the user's namespace. It runs as an IPython exec_file: unlike exec_lines, those
    # do not run as a cell, whose end would undo the stream patches install() makes.
    return f"__import__({_STARTUP_MODULE!r}).install(get_ipython())\n"


# What ``python -m ipykernel_launcher`` does, except that debugpy is hidden while the kernel
# starts: ipykernel would otherwise load it (and pydevd, some 100 modules and ~10 MB) into every
# kernel for a debugger nobody attaches. _kernel_startup.py unhides it for user code. That file
# is loaded first, by path under a private module name, and its before_kernel() keeps modules
# a kernel never uses out of it (about 2 MB of every idle kernel).
_LAUNCHER = (
    "import sys; sys.path[0] == '' and sys.path.pop(0); sys.modules['debugpy'] = None; "
    "import importlib.util as u; "
    f"s = u.spec_from_file_location({_STARTUP_MODULE!r}, {str(_STARTUP_FILE)!r}); "
    "m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
    "m.before_kernel(); "
    "from ipykernel import kernelapp; kernelapp.launch_new_instance()"
)


# What ``python -m bash_kernel`` does, except that pexpect sends each line of a cell to bash at
# once: by default it sleeps 50 ms before every line, which made starting the kernel (whose
# set-up sends a 40-line function) take seconds and a 10-line cell half a second longer.
_BASH_LAUNCHER = (
    "import sys; sys.path[0] == '' and sys.path.pop(0)\n"
    "import pexpect\n"
    "_init = pexpect.spawn.__init__\n"
    "def _no_delay(self, *args, **kwargs):\n"
    "    _init(self, *args, **kwargs)\n"
    "    self.delaybeforesend = None\n"
    "pexpect.spawn.__init__ = _no_delay\n"
    "from ipykernel.kernelapp import IPKernelApp\n"
    "from bash_kernel.kernel import BashKernel\n"
    "IPKernelApp.launch_instance(kernel_class=BashKernel)\n"
)


def _kernel_argv(loader: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        _LAUNCHER,
        "-f",
        "{connection_file}",
        # No sqlite history file in the user's home: less I/O and memory per kernel.
        "--HistoryManager.enabled=False",
        # Tracebacks are read by people and models, not terminals.
        "--InteractiveShell.colors=nocolor",
        f"--IPKernelApp.exec_files={loader}",
    ]


def _lenient_unpack(data: bytes) -> Any:
    """Decode a kernel message, replacing bytes that are not UTF-8 instead of failing."""
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        return json.loads(bytes(data).decode("utf-8", "replace"))


def normalize_language(language: str | None) -> str:
    """E2B's name for ``language`` (an alias such as ``js`` or ``sh`` too); Python by default."""
    if not language:
        return "python"
    language = language.strip().lower()
    return _ALIASES.get(language, language)


def unsupported_language(language: str) -> str:
    """What to tell a client that asked for ``language``, which has no kernel here."""
    supported = ", ".join(SUPPORTED_LANGUAGES)
    if language in _NOT_SHIPPED:
        return (
            f"Language {language!r} is not available in this sandbox: the local runtime has no "
            f"kernel for {_NOT_SHIPPED[language]}. Supported languages: {supported}."
        )
    return f"Language {language!r} is not supported. Supported languages: {supported}."


@dataclass(frozen=True)
class Flavour:
    """How contexts of one language are started and spoken to."""

    language: str
    display: str
    kernel_name: str
    # Deno's kernel binds TCP ports only; the others use ipc sockets.
    transport: str = "ipc"
    # Deno's kernel reports some failures (a syntax error) only in its reply, and may publish a
    # cell's last output after it says it is idle.
    linger: bool = False


FLAVOURS = {
    "python": Flavour("python", "Python", _KERNEL_NAME),
    "javascript": Flavour("javascript", "JavaScript", _DENO_KERNEL_NAME, "tcp", True),
    "typescript": Flavour("typescript", "TypeScript", _DENO_KERNEL_NAME, "tcp", True),
    "bash": Flavour("bash", "Bash", _BASH_KERNEL_NAME),
}


def find_deno(path: str | None) -> str | None:
    """The ``deno`` executable on ``path`` or beside the ``deno`` package, or None."""
    return shutil.which("deno", path=path) or deno_package_binary()


# Deno's kernel reserves about 1.2 GiB of address space for V8's code (measured with Deno 2.9),
# which the data-size limit counts though little of it is ever resident.
_DENO_ADDRESS_SPACE = 3 * 1024**3 // 2


def start_failure(language: str, exc: BaseException) -> str:
    """What to tell a client whose context of ``language`` could not start."""
    flavour = FLAVOURS[language]
    message = f"Failed to start the {flavour.display} kernel: {exc}"
    if flavour.kernel_name == _DENO_KERNEL_NAME:
        limit, _ = resource.getrlimit(resource.RLIMIT_DATA)
        if limit != resource.RLIM_INFINITY and limit < _DENO_ADDRESS_SPACE:
            message += (
                f". Deno's kernel needs about 1.5 GiB of address space and this sandbox's data"
                f" size limit (its memory limit) is {limit // 1024**2} MiB: run JavaScript and"
                " TypeScript in a sandbox whose memory limit is at least 1.5 GiB."
            )
    return message


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_code(language: str, env: Mapping[str, str], *, push: bool | None) -> str:
    """Code that sets ``env`` in a kernel of ``language``.

    ``push=True`` remembers the values it replaces and ``push=False`` restores them (``env``
    then only names the variables); ``push=None`` sets them for good.
    """
    if language == "python":
        if push is None:
            return f"__import__('os').environ.update({dict(env)!r})"
        if push:
            return f"__import__({_STARTUP_MODULE!r}).push_env({dict(env)!r})"
        return f"__import__({_STARTUP_MODULE!r}).pop_env()"
    if language == "bash":
        lines = []
        for index, (key, value) in enumerate(sorted(env.items())):
            saved = f"__e2b_env_{index}"
            if push:
                lines.append(f'{saved}_set="${{{key}+x}}"; {saved}="${{{key}-}}"')
            if push is False:
                lines.append(
                    f'if [ -n "${saved}_set" ]; then export {key}="${saved}"; '
                    f"else unset {key}; fi; unset {saved} {saved}_set"
                )
            else:
                lines.append(f"export {key}={shlex.quote(value)}")
        return "\n".join(lines)
    # Deno (JavaScript and TypeScript)
    data = json.dumps(dict(env))
    if push is None:
        return f"for (const [k, v] of Object.entries({data})) Deno.env.set(k, v);"
    if push:
        return (
            "(globalThis.__e2bEnv ??= []).push(Object.fromEntries("
            f"Object.keys({data}).map((k) => [k, Deno.env.get(k)])));"
            f"for (const [k, v] of Object.entries({data})) Deno.env.set(k, v);"
        )
    return (
        "for (const [k, v] of Object.entries(globalThis.__e2bEnv?.pop() ?? {}))"
        " v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);"
    )


def check_env_names(language: str, env: Mapping[str, str]) -> None:
    """Raise ValueError for a name ``env_code`` cannot set in ``language``."""
    if language == "bash":
        for key in env:
            if not ENV_NAME.fullmatch(key):
                raise ValueError(f"{key!r} is not a valid shell variable name")


def missing_requirement(language: str, deno: str | None) -> str | None:
    """Why ``language`` cannot run here (a sentence saying what to install), or None.

    Args:
        language: A normalized language name.
        deno: The deno executable found for the sandbox, or None.
    """
    if language in ("javascript", "typescript") and deno is None:
        return (
            f"{FLAVOURS[language].display} runs on Deno's Jupyter kernel, and no deno"
            " executable was found: install langchain-e2b's local extra (pip install"
            " 'langchain-e2b[local]'), which brings the deno package."
        )
    if language == "bash" and find_spec("bash_kernel") is None:
        return (
            "Bash contexts need the bash_kernel package: install langchain-e2b's local"
            " extra (pip install 'langchain-e2b[local]')."
        )
    return None


def write_kernel_spec(run_dir: str, flavour: Flavour, deno: str | None) -> None:
    """Write the kernel spec of ``flavour`` under ``run_dir/kernels`` for ``Kernel`` to find."""
    spec_dir = Path(run_dir, "kernels", flavour.kernel_name)
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any]
    if flavour.kernel_name == _DENO_KERNEL_NAME:
        spec = {
            "argv": [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
            "display_name": "Deno",
            "language": "typescript",
            # SIGINT ends Deno's kernel; an interrupt request stops the running code.
            "interrupt_mode": "message",
        }
    elif flavour.kernel_name == _BASH_KERNEL_NAME:
        spec = {
            "argv": [sys.executable, "-c", _BASH_LAUNCHER, "-f", "{connection_file}"],
            "display_name": "Bash",
            "language": "bash",
            "interrupt_mode": "signal",
        }
    else:
        loader = spec_dir / "startup.py"
        loader.write_text(_loader_source())
        spec = {
            "argv": _kernel_argv(str(loader)),
            "display_name": "Python 3",
            "language": "python",
            "interrupt_mode": "signal",
            "metadata": {"debugger": False},
        }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


_DELIM = b"<IDS|MSG>"
_PROTOCOL_VERSION = "5.4"
_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


def _parse_date(header: dict[str, Any]) -> None:
    """Turn the header's ISO 8601 ``date`` into a datetime, as ``jupyter_client`` does."""
    date = header.get("date")
    if isinstance(date, str):
        text = date[:-1] + "+00:00" if date.endswith("Z") else date
        with contextlib.suppress(ValueError):
            header["date"] = datetime.fromisoformat(text)


class _Session:
    """Signs, frames and checks Jupyter messages (``hmac-sha256``, JSON)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.id = uuid.uuid4().hex

    def _sign(self, parts: list[bytes]) -> bytes:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def frames(self, msg_type: str, content: Mapping[str, Any]) -> tuple[str, list[bytes]]:
        """A message's id and its wire frames."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.id,
            "username": "e2b",
            "date": datetime.now(timezone.utc).isoformat(),
            "version": _PROTOCOL_VERSION,
        }
        parts = [json.dumps(header).encode(), b"{}", b"{}", json.dumps(content).encode()]
        return msg_id, [_DELIM, self._sign(parts), *parts]

    def message(self, frames: list[bytes]) -> dict[str, Any] | None:
        """Decode received frames; None for a message whose signature does not match."""
        try:
            at = frames.index(_DELIM)
        except ValueError:
            return None
        parts = frames[at + 2 : at + 6]
        if len(parts) < 4 or not hmac.compare_digest(frames[at + 1], self._sign(parts)):
            return None
        try:
            header, parent, metadata, content = (_lenient_unpack(part) for part in parts)
        except ValueError:
            return None  # signed but not JSON: dropped like a forged message
        if not isinstance(header, dict) or not isinstance(parent, dict):
            return None
        _parse_date(header)
        _parse_date(parent)
        return {
            "header": header,
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "msg_id": header.get("msg_id"),
            "msg_type": header.get("msg_type"),
            "buffers": frames[at + 6 :],
        }


def _observe(sent: Awaitable[Any]) -> None:
    """Log a failed send: ``zmq.asyncio`` reports it in the returned future, not by raising."""

    def check(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("a message to a kernel was not sent: %s", future.exception())

    asyncio.ensure_future(sent).add_done_callback(check)  # already a future: returned as is


class _Channels:
    """The agent's sockets to one kernel: shell requests and replies, IOPub output."""

    def __init__(self, session: _Session, addresses: Mapping[str, str]) -> None:
        self.session = session
        self._addresses = addresses
        # One context (and its I/O thread) serves every kernel of the agent.
        self._context = zmq.asyncio.Context.instance()
        self.shell = self._context.socket(zmq.DEALER)
        self.iopub = self._context.socket(zmq.SUB)
        self._control: zmq.asyncio.Socket | None = None
        try:
            self.shell.setsockopt(zmq.LINGER, 0)
            self.shell.connect(addresses["shell"])
            self.iopub.setsockopt(zmq.LINGER, 0)
            # Take only a few messages ahead of the HTTP client: output the client has not
            # read yet waits in the kernel that produced it, not in this process.
            self.iopub.setsockopt(zmq.RCVHWM, IOPUB_BACKLOG)
            self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
            self.iopub.connect(addresses["iopub"])
        except BaseException:
            self.shell.close()
            self.iopub.close()
            raise

    def send_shell(self, msg_type: str, content: Mapping[str, Any]) -> str:
        """Queue a request on the shell channel; return its message id."""
        msg_id, frames = self.session.frames(msg_type, content)
        _observe(self.shell.send_multipart(frames))
        return msg_id

    def send_control(self, msg_type: str, content: Mapping[str, Any]) -> None:
        """Send a request on the control channel (connected when first used)."""
        if self._control is None:
            self._control = self._context.socket(zmq.DEALER)
            self._control.setsockopt(zmq.LINGER, 0)
            self._control.connect(self._addresses["control"])
        _observe(self._control.send_multipart(self.session.frames(msg_type, content)[1]))

    def execute(self, code: str, *, silent: bool = False) -> str:
        """Queue ``code`` for execution (as ``jupyter_client``'s ``execute``); its message id."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        return self.send_shell("execute_request", content)

    @staticmethod
    async def _get(sock: zmq.asyncio.Socket, session: _Session, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # Poll first: a wait cancelled in the poll has taken no message.
            if not await sock.poll(None if left is None else int(left * 1000)):
                raise queue.Empty
            message = session.message(await sock.recv_multipart())
            if message is not None:
                return message

    async def get_iopub_msg(self, timeout: float | None = None) -> Any:
        """The next IOPub message; ``queue.Empty`` after ``timeout`` seconds without one."""
        return await self._get(self.iopub, self.session, timeout)

    async def get_shell_msg(self, timeout: float | None = None) -> Any:
        """The next shell reply; ``queue.Empty`` after ``timeout`` seconds without one."""
        return await self._get(self.shell, self.session, timeout)

    def close(self) -> None:
        """Close every socket (pending waits end with an error)."""
        for sock in (self.shell, self.iopub, self._control):
            if sock is not None:
                sock.close(linger=0)


def _free_ports(count: int) -> list[int]:
    # Bound together so they differ; the kernel binds them right after (as jupyter_client does).
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class Kernel:
    """One code context: a kernel process and the sockets that drive it."""

    def __init__(
        self, *, context_id: str, language: str, cwd: str, run_dir: str, deno: str | None = None
    ) -> None:
        self.id = context_id
        self.language = language
        self.flavour = FLAVOURS[language]
        # The deno executable, for Deno contexts (their syntax errors are found with it).
        self.deno = deno
        self.cwd = cwd
        self._run_dir = run_dir
        # Serialises executions (and their env-var set-up and clean-up) on this context.
        self.lock = asyncio.Lock()
        # Serialises start, stop and restart.
        self._life = asyncio.Lock()
        # Bumped by every restart and stop, so a running relay can tell its kernel went away.
        self.generation = 0
        self.closed = False
        # A sentence to show at the start of the next execution (state lost while nobody watched).
        self.notice: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._channels: _Channels | None = None
        self._files: list[str] = []
        self._launches = 0

    def as_json(self) -> dict[str, str]:
        """The context as E2B's ``/contexts`` API describes it."""
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    @property
    def client(self) -> Any:
        """The channels of the running kernel (``get_iopub_msg``, ``get_shell_msg``)."""
        if self._channels is None:
            raise RuntimeError("the kernel is not running")
        return self._channels

    async def start(self, env: Mapping[str, str]) -> None:
        """Launch the kernel with environment ``env``; return once it can execute code."""
        async with self._life:
            await self._launch(env)

    def _connection(self, stem: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The connection file's content and the address of each channel."""
        if self.flavour.transport == "tcp":
            ip = "127.0.0.1"
            ports = _free_ports(len(_CHANNELS))
            addresses = {c: f"tcp://{ip}:{p}" for c, p in zip(_CHANNELS, ports, strict=True)}
        else:
            # ipc endpoints are files named "<ip>-<port>" (jupyter_client's convention).
            ip = stem
            ports = list(range(1, len(_CHANNELS) + 1))
            addresses = {c: f"ipc://{ip}-{p}" for c, p in zip(_CHANNELS, ports, strict=True)}
            self._files += [f"{ip}-{p}" for p in ports]
        info: dict[str, Any] = {f"{c}_port": p for c, p in zip(_CHANNELS, ports, strict=True)}
        info.update(
            ip=ip,
            transport=self.flavour.transport,
            key=secrets.token_hex(32),
            signature_scheme="hmac-sha256",
            kernel_name=self.flavour.kernel_name,
        )
        return info, addresses

    def _spawn(
        self, env: Mapping[str, str], info: Mapping[str, Any], connection_file: str
    ) -> subprocess.Popen[bytes]:
        """Write the connection file and start the kernel process."""
        spec_file = Path(self._run_dir, "kernels", self.flavour.kernel_name, "kernel.json")
        spec = json.loads(spec_file.read_text())
        self._files.append(connection_file)
        fd = os.open(connection_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        if self.flavour.kernel_name == _DENO_KERNEL_NAME:
            home = env.get("HOME") or self.cwd
            kernel_env = {
                # Deno caches compiled code and modules here; the default is the same place,
                # made explicit so a jail's read-only system directories are never tried.
                "DENO_DIR": os.path.join(home, ".cache", "deno"),
                "DENO_NO_UPDATE_CHECK": "1",
                "DENO_NO_PROMPT": "1",
                "NO_COLOR": "1",
                **env,
            }
        else:
            # Figures display inline, as in Jupyter, even when the sandbox's base environment
            # picks a headless backend for commands (ipykernel only fills in an unset variable).
            kernel_env = {**env, "MPLBACKEND": _INLINE_BACKEND}
        # The kernel exits when the agent does (ipykernel watches this pid).
        kernel_env["JPY_PARENT_PID"] = str(os.getpid())
        argv = [connection_file if a == "{connection_file}" else a for a in spec["argv"]]
        # Its own session (process group), so an interrupt or a kill reaches its children too.
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd=self.cwd,
            env=kernel_env,
            start_new_session=True,
        )

    async def _launch(self, env: Mapping[str, str]) -> None:
        self._launches += 1
        stem = os.path.join(self._run_dir, f"{self.id[:8]}-{self._launches}")
        info, addresses = self._connection(stem)
        try:
            self._process = self._spawn(env, info, f"{stem}.json")
            self._channels = _Channels(_Session(info["key"].encode()), addresses)
            await self._wait_ready(KERNEL_READY_TIMEOUT)
        except BaseException:
            await self._kill()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        """Return once the kernel answers a ``kernel_info_request``; then drop early output."""
        channels = self.client
        deadline = time.monotonic() + timeout
        while True:
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
            msg_id = channels.send_shell("kernel_info_request", {})
            answered = False
            with contextlib.suppress(queue.Empty):
                while not answered:
                    reply = await channels.get_shell_msg(timeout=min(1.0, left))
                    answered = reply.get("parent_header", {}).get("msg_id") == msg_id
            if answered:
                break
        # Output published before IOPub was connected is not for any execution.
        with contextlib.suppress(queue.Empty):
            while True:
                await channels.get_iopub_msg(timeout=0.2)

    async def _kill(self) -> None:
        process, channels = self._process, self._channels
        self._process = self._channels = None
        if channels is not None:
            channels.close()
        if process is not None:
            # The kernel leads its own process group: take its children down with it.
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                process.kill()
            for _ in range(200):  # up to 2 s to reap it
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.01)
        for path in self._files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._files.clear()
        # A closed channel's pending wait ends at the next loop turn; let it.
        await asyncio.sleep(0)

    async def restart(self, env: Mapping[str, str]) -> None:
        """Kill the kernel and launch a new one (its state is lost), unless it was stopped."""
        async with self._life:
            self.generation += 1
            await self._kill()
            if not self.closed:
                await self._launch(env)

    async def stop(self) -> None:
        """Kill the kernel and its children for good."""
        async with self._life:
            self.closed = True
            self.generation += 1
            await self._kill()

    async def is_alive(self) -> bool:
        """Whether the kernel process is running."""
        process = self._process
        return process is not None and process.poll() is None

    def exit_status(self) -> int | None:
        """The kernel process's exit status (negative: the signal), or None while it runs."""
        process = self._process
        return None if process is None else process.returncode

    async def interrupt(self) -> None:
        """Interrupt the running code (SIGINT, or an interrupt request for Deno)."""
        process, channels = self._process, self._channels
        if process is None or channels is None:
            return
        if self.flavour.kernel_name == _DENO_KERNEL_NAME:
            # SIGINT ends Deno's kernel; an interrupt request stops the running code.
            with contextlib.suppress(zmq.ZMQError):
                channels.send_control("interrupt_request", {})
            return
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGINT)

    def send(self, code: str, *, silent: bool) -> str:
        """Queue code on the kernel's shell channel and return the request's message id."""
        return str(self.client.execute(code, silent=silent))

    async def reply(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        """The shell reply to ``msg_id`` (its content), or None if none comes in ``timeout``."""
        channels = self._channels
        if channels is None:
            return None
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            while (left := deadline - time.monotonic()) > 0:
                msg = await channels.get_shell_msg(timeout=left)
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    content = msg.get("content")
                    return content if isinstance(content, dict) else None
        return None

    async def drain_replies(self) -> None:
        """Discard shell replies nobody waits for (progress is followed on IOPub)."""
        channels = self._channels
        if channels is None:
            return
        with contextlib.suppress(Exception):
            while True:
                await channels.get_shell_msg(timeout=0)


async def next_message(
    client: Any, disconnected: asyncio.Event | None = None, timeout: float = POLL_INTERVAL
) -> Any:
    """The kernel's next IOPub message, or None after ``timeout`` seconds without one.

    If ``disconnected`` is set while waiting (the client went away), the wait ends at once with
    None, so the execution can be interrupted without delay.
    """
    # In a task of its own: closing the channel (a restart or stop elsewhere) cancels the
    # pending poll, and that must not look like a cancellation of the caller.
    read = asyncio.ensure_future(client.get_iopub_msg(timeout=timeout))
    gone = asyncio.ensure_future((disconnected or asyncio.Event()).wait())
    try:
        await asyncio.wait({read, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        read.cancel()
        raise
    finally:
        gone.cancel()
    if not read.done():
        # The client left. The read is still waiting in the socket's poll, and a read cancelled
        # there has taken no message: the kernel's next one stays queued for the next call.
        read.cancel()
        read.add_done_callback(lambda task: task.cancelled() or task.exception())
        return None
    if read.cancelled():
        await asyncio.sleep(0.05)
        return None
    exc = read.exception()
    if exc is not None:
        if not isinstance(exc, queue.Empty):
            # The channel closed under us; the caller's checks say what happened.
            await asyncio.sleep(0.05)
        return None
    return read.result()
