"""The session's side of the E2B SDK: calls as steps, bounded output, SDK errors translated.

This is the only place SDK exceptions become :mod:`langchain_e2b.errors` ones.

The caller is protected from what a sandbox prints: a command or cell printing fast for long
would otherwise grow the process running the agent by gigabytes (the SDKs keep every chunk).
:class:`Streams` keeps a bounded head and tail per stream while the output arrives, and empties
the code-interpreter SDK's own copy as it goes (``benchmarks/bench_caller_memory.py``).

One function per SDK call serves both SDK flavours: ``Sandbox`` and ``AsyncSandbox`` share method
names and arguments, and the driver awaits what the async one returns.
"""

from __future__ import annotations

import inspect
import logging
import math
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from e2b import (
    AuthenticationException,
    CommandExitException,
    ConnectionConfig,
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    NotFoundException,
    SandboxException,
    SandboxNotFoundException,
    SandboxNotRunningException,
    TimeoutException,
)

from langchain_e2b import __version__, _format
from langchain_e2b._backend import SandboxBackend
from langchain_e2b._format import CodeResult, CommandResult, OutputCapture
from langchain_e2b._steps import Call, Steps
from langchain_e2b.errors import (
    E2BBackendUnreachableError,
    E2BConfigError,
    E2BError,
    E2BFileError,
    E2BFileNotFoundError,
    E2BInvalidArgumentError,
    E2BSandboxError,
    E2BSandboxGoneError,
)

logger = logging.getLogger("langchain_e2b.session")

# Tags our traffic in the SDK's User-Agent. Configs read it when they are built, so it is set when
# the LangChain side first loads: every session reaches the SDK through this module.
ConnectionConfig.set_integration(f"langchain-e2b/{__version__}")

T = TypeVar("T")

DEFAULT_CWD = "/home/user"
OUTPUT_DIR = "/tmp/langchain_e2b"
"""Where full outputs of truncated results and logs of background commands are written."""
TOO_LONG = (
    "it was too long to keep; to see all of it, write it to a file in the sandbox instead (e.g. "
    "`command > /tmp/out.txt 2>&1`, or open() in code) and read parts of that file"
)
"""What the marker in a very long output says. Copying the dropped middle back into the sandbox
from here was tried and rejected: a sandbox prints faster than the caller can upload, and the SDK's
transport then buffers the difference, so the caller's memory grew with the output again."""

OutputCallback = Callable[[str, str], Any]
"""``on_output(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``. May be a coroutine
function when passed to the async methods."""

Attempt = Callable[[Any], Steps[T]]
"""One try of an operation on an SDK sandbox."""
FileCall = Callable[[Any, str], Steps[T]]
"""A file operation on an SDK sandbox and an absolute path."""


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory listing.

    Attributes:
        path: Absolute path inside the sandbox.
        name: Base name.
        is_dir: Whether the entry is a directory.
        size: Size in bytes.
    """

    path: str
    name: str
    is_dir: bool
    size: int


def output_path() -> str:
    """A new file name under :data:`OUTPUT_DIR`."""
    return f"{OUTPUT_DIR}/output-{uuid.uuid4().hex[:10]}.txt"


# --- timing (pure) -----------------------------------------------------------------------------


def keepalive_due(expires_at: float, lifetime: float, sandbox_timeout: int) -> int | None:
    """Seconds to set the sandbox's timeout to, or None if its expiry is close enough already.

    Pushing on every call would add a round trip to each one; pushing only once the remaining
    lifetime has dropped by a small slack keeps an active sandbox alive just as well. After a
    call that needed a longer lifetime, the expiry is brought back to ``sandbox_timeout`` so
    an idle sandbox still expires on time.
    """
    slack = min(10.0, sandbox_timeout / 10)
    remaining = expires_at - time.monotonic()
    if lifetime - slack <= remaining <= max(lifetime, sandbox_timeout) + slack:
        return None
    return math.ceil(lifetime)


def lifetime_for(sandbox_timeout: int, call_timeout: float) -> float:
    """A call may run longer than the sandbox's own timeout: keep it alive for the whole call."""
    return max(float(sandbox_timeout), call_timeout + 30) if call_timeout else sandbox_timeout


# --- errors: gone or not, and our exception for the rest --------------------------------------


class SandboxGone(Exception):
    """Internal: a call found the sandbox stopped; the session replaces it and retries."""


def _where(backend: SandboxBackend | None) -> str:
    return backend.address if backend is not None else "the E2B backend"


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, httpx.ConnectError)


def is_gone(sandbox: Any, exc: Exception, backend: SandboxBackend | None) -> Steps[bool]:
    """Whether ``exc`` means the sandbox is gone, asking the backend when the error alone is unsure.

    Raises:
        E2BBackendUnreachableError: Neither the sandbox nor the API answered, or the API knows
            the sandbox but its own address does not answer.
    """
    if isinstance(exc, SandboxGone | SandboxNotFoundException | SandboxNotRunningException):
        return True
    if isinstance(exc, E2BError) or not isinstance(exc, SandboxException | httpx.TransportError):
        return False
    if isinstance(exc, FileNotFoundException | CommandExitException | InvalidArgumentException):
        return False
    try:
        return not (yield Call(lambda: sandbox.is_running(request_timeout=10)))
    except Exception as probe:
        if not _unreachable(probe) and not _unreachable(exc):
            return True  # the sandbox's address answers but not as a running sandbox
    try:  # the sandbox did not answer at all: ask the control plane whether it still exists
        yield Call(lambda: sandbox.get_info(request_timeout=10))
    except NotFoundException:
        return True
    except Exception as api:
        if _unreachable(api):
            raise unreachable("reach the E2B API", api, backend) from exc
        return True
    where = str(getattr(sandbox, "envd_api_url", "") or _where(backend))
    raise E2BBackendUnreachableError(
        f"Sandbox {sandbox.sandbox_id} is running, but its address {where} did not answer: {exc}. "
        "Check sandbox_url / E2B_SANDBOX_URL (a `langchain-e2b local serve` server uses its API "
        "address for both).",
        address=where,
    ) from exc


def unreachable(
    action: str, exc: BaseException, backend: SandboxBackend | None
) -> E2BBackendUnreachableError:
    """The backend did not answer: say where we tried."""
    where = _where(backend)
    return E2BBackendUnreachableError(
        f"Could not {action}: {where} is unreachable ({exc}). Check that the server is running "
        "and the address is right (api_url / E2B_API_URL, sandbox_url / E2B_SANDBOX_URL).",
        address=where,
    )


def backend_error(action: str, exc: Exception, backend: SandboxBackend | None) -> Exception:
    """Our exception for a failed control-plane call (create, connect) or any unexpected one."""
    where = _where(backend)
    if isinstance(exc, E2BError):
        return exc
    if isinstance(exc, AuthenticationException):
        return E2BConfigError(
            f"The backend at {where} rejected the credentials while trying to {action}: {exc}. "
            "Check api_key / E2B_API_KEY."
        )
    if _unreachable(exc):
        return unreachable(action, exc, backend)
    return E2BSandboxError(f"Could not {action} at {where}: {exc}")


def gone_again(exc: Exception, backend: SandboxBackend | None) -> E2BSandboxGoneError:
    """The replacement sandbox was gone at once too."""
    return E2BSandboxGoneError(
        f"The sandbox stopped again right after it was recreated ({_where(backend)}): {exc}"
    )


def _from_sdk(exc: Exception) -> bool:
    """Whether the SDK (or its HTTP client) raised ``exc``."""
    return type(exc).__module__.split(".")[0] in ("e2b", "e2b_code_interpreter", "httpx")


Fixable = Callable[[SandboxException], E2BError]
"""Turns an SDK refusal that the model can fix into our exception."""


def map_error(
    exc: Exception, action: str, backend: SandboxBackend | None, fixable: Fixable | None
) -> Exception:
    """Our exception for an SDK one that did not mean the sandbox is gone (others: ``exc``)."""
    if not _from_sdk(exc):
        return exc  # ours, or a bug or a callback's error: not the SDK's to translate
    # A timeout is never the argument's fault.
    if fixable is not None and isinstance(exc, SandboxException):
        return (
            backend_error(action, exc, backend)
            if isinstance(exc, TimeoutException)
            else fixable(exc)
        )
    return backend_error(action, exc, backend)


def file_error(target: str, action: str) -> Fixable:
    """A file operation the sandbox refused (permission denied, a directory, ...)."""
    return lambda exc: E2BFileError(f"Could not {action} {target}: {exc}", path=target)


def language_error(language: str | None) -> Fixable | None:
    """Only a requested language can be the model's mistake; anything else is a backend failure."""
    if language is None:
        return lambda exc: (
            E2BInvalidArgumentError(str(exc))
            if isinstance(exc, InvalidArgumentException)
            else E2BSandboxError(f"Could not run code: {exc}")
        )
    return lambda exc: E2BInvalidArgumentError(
        f"Could not run code as {language!r}: {str(exc).rstrip('.')}. Omit `language` to run "
        "Python."
    )


def command_error(workdir: str) -> Fixable:
    """The model-readable reason the sandbox refused to start a command."""

    def fix(exc: SandboxException) -> E2BError:
        reason = str(exc)
        if not isinstance(exc, InvalidArgumentException):
            return E2BSandboxError(f"Could not run a command: {reason}")
        if "cwd" in reason.lower():
            return E2BInvalidArgumentError(
                f"The working directory {workdir} does not exist in the sandbox (or is not a "
                f"directory). Create it first (e.g. `mkdir -p {shlex.quote(workdir)}`) or use "
                "another cwd."
            )
        if "argument list too long" in reason.lower():
            return E2BInvalidArgumentError(
                f"The command is too long for the sandbox to start ({reason}). Write the script "
                "to a file and run that file instead (e.g. `bash /tmp/script.sh`)."
            )
        return E2BInvalidArgumentError(f"The sandbox could not start the command: {reason}")

    return fix


# --- output kept within bounds ----------------------------------------------------------------


class Streams:
    """Receives output chunks, keeps a bounded head and tail of each stream, forwards each chunk."""

    def __init__(self, on_output: OutputCallback | None, limit: int) -> None:
        self.on_output = on_output
        self.captures = {"stdout": OutputCapture(limit), "stderr": OutputCapture(limit)}

    def push(self, stream: str, text: str) -> Any:
        self.captures[stream].add(text)
        return self.on_output(stream, text) if self.on_output is not None else None

    def stdout(self, text: str) -> Any:
        return self.push("stdout", text)

    def stderr(self, text: str) -> Any:
        return self.push("stderr", text)

    def stdout_message(self, message: Any) -> Any:
        _drop_sdk_copy("stdout")
        return self.push("stdout", str(message.line))

    def stderr_message(self, message: Any) -> Any:
        _drop_sdk_copy("stderr")
        return self.push("stderr", str(message.line))

    def texts(self) -> tuple[str, str, int]:
        """Kept stdout and stderr (with a marker where the middle was dropped), chars omitted."""
        out, err = (self.captures[name].text(TOO_LONG) for name in ("stdout", "stderr"))
        return out, err, sum(c.omitted for c in self.captures.values())


def _drop_sdk_copy(stream: str) -> None:
    # The code-interpreter SDK appends every chunk to the Execution it will return, then calls the
    # handler (from its `_parse_output(execution, ...)`): empty that list, so a cell that prints
    # gigabytes does not grow this process. If the SDK changes shape, nothing is dropped here and
    # the Streams still bound what the session keeps.
    execution = sys._getframe(2).f_locals.get("execution")
    logs = getattr(getattr(execution, "logs", None), stream, None)
    if isinstance(logs, list):
        logs.clear()


# --- the operations' SDK calls ----------------------------------------------------------------

_RETAIN = "retain_output"


def _retain_option(sandbox: Any) -> dict[str, bool]:
    # SDK releases that can stop keeping a command's output take retain_output=False.
    run = sandbox.commands.run
    try:
        return {_RETAIN: False} if _RETAIN in inspect.signature(run).parameters else {}
    except (TypeError, ValueError):
        return {}


def code_attempt(
    code: str,
    language: str | None,
    limit: float,
    on_output: OutputCallback | None,
    capture: int,
) -> Attempt[CodeResult]:
    """Run a cell; a timeout is a result, and a sandbox that died meanwhile is gone."""

    def attempt(sandbox: Any) -> Steps[CodeResult]:
        streams = Streams(on_output, capture)
        restarted = False
        try:
            execution = yield Call(
                lambda: sandbox.run_code(
                    code,
                    language=language,
                    on_stdout=streams.stdout_message,
                    on_stderr=streams.stderr_message,
                    timeout=execution_timeout(sandbox, limit),
                )
            )
        except TimeoutException as exc:
            if isinstance(exc, SandboxNotRunningException) or not (
                yield Call(lambda: _probe(sandbox))
            ):
                raise SandboxGone(str(exc)) from exc
            execution = None
            if language in (None, "python"):
                restarted = yield from _kernel_was_restarted(sandbox)
        stdout, stderr, omitted = streams.texts()
        result = (
            _format.code_result(
                execution,
                code=code,
                language=language,
                sandbox_id=sandbox.sandbox_id,
                timeout=limit,
            )
            if execution is not None
            else CodeResult(
                code=code,
                language=language,
                sandbox_id=sandbox.sandbox_id,
                timed_out=True,
                timeout=limit,
            )
        )
        result.stdout, result.stderr, result.output_omitted = stdout, stderr, omitted
        result.kernel_restarted = restarted
        return result

    return attempt


# How long a probe cell may take: code that ignores the interrupt gets a few seconds' grace
# before its kernel is restarted, and the probe waits for that to happen.
_KERNEL_PROBE_SECONDS = 20.0


def execution_timeout(sandbox: Any, limit: float) -> float:
    """The SDK ``timeout`` argument that ends a cell ``limit`` seconds after the call starts.

    The code-interpreter SDK gives its read and write phases the same timeout, and the HTTP
    transport of recent ``e2b`` releases (pyqwest) adds those phases into one deadline for the
    whole request: ``timeout=2`` then returns after 4 s. Dividing by what the transport adds up
    keeps the promise that the timeout is wall time; other transports are left as they are.
    """
    if not limit:
        return limit
    kind = type(sandbox)
    factor = _TIMEOUT_FACTORS.get(kind)
    if factor is None:
        # The SDK builds a new HTTP client each time ``_client`` is read: once per class.
        client = getattr(sandbox, "_client", None)
        if client is None:
            return limit
        factor = _TIMEOUT_FACTORS[kind] = _timeout_factor(client)
    return limit / factor


_TIMEOUT_FACTORS: dict[type, float] = {}


def _timeout_factor(client: Any) -> float:
    """How many times an SDK HTTP client's transport counts a request's timeout (1 for most)."""
    transport = getattr(client, "_transport", None)
    if transport is None or type(transport).__module__.split(".")[0] != "pyqwest":
        return 1.0
    try:
        from pyqwest.httpx._transport import convert_timeout
    except ImportError:
        return 1.0
    unit = httpx.Timeout(1.0, connect=1.0).as_dict()
    try:
        total = convert_timeout({"timeout": unit})
    except Exception:
        return 1.0
    return float(total) if total and total > 1 else 1.0


def _kernel_was_restarted(sandbox: Any) -> Steps[bool]:
    """Whether the kernel behind a timed-out cell had to be restarted (its state is gone).

    A cell that ignores the interrupt keeps the kernel busy until the runtime restarts it; a
    kernel's execution counter starts again at 1 after a restart, so a probe cell tells. The
    probe puts the counter back, so the model's ``Out[n]`` numbering does not skip a number.
    """
    try:
        probe = yield Call(
            lambda: sandbox.run_code(
                "get_ipython().execution_count -= 1",
                timeout=execution_timeout(sandbox, _KERNEL_PROBE_SECONDS),
            )
        )
    except Exception:
        return False
    return getattr(probe, "execution_count", None) == 1


def _probe(sandbox: Any) -> Any:
    """``sandbox.is_running()``, any failure counting as not running."""
    try:
        running = sandbox.is_running(request_timeout=10)
    except Exception:
        return False
    if inspect.isawaitable(running):
        return _aprobe(running)
    return bool(running)


async def _aprobe(running: Any) -> bool:
    try:
        return bool(await running)
    except Exception:
        return False


def command_attempt(
    cmd: str, workdir: str, limit: float, on_output: OutputCallback | None, capture: int
) -> Attempt[CommandResult]:
    """Run a command to its end; a non-zero exit and a timeout are results."""

    def attempt(sandbox: Any) -> Steps[CommandResult]:
        streams = Streams(on_output, capture)
        done: Any = None
        try:
            done = yield Call(
                lambda: sandbox.commands.run(
                    cmd,
                    cwd=workdir,
                    timeout=limit,
                    on_stdout=streams.stdout,
                    on_stderr=streams.stderr,
                    **_retain_option(sandbox),
                )
            )
        except CommandExitException as exc:
            done = exc
        except TimeoutException as exc:
            if isinstance(exc, SandboxNotRunningException) or not (
                yield Call(lambda: _probe(sandbox))
            ):
                raise SandboxGone(str(exc)) from exc
        stdout, stderr, omitted = streams.texts()
        return CommandResult(
            command=cmd,
            stdout=stdout,
            stderr=stderr,
            exit_code=done.exit_code if done is not None else None,
            error=(done.error or None) if done is not None else None,
            sandbox_id=sandbox.sandbox_id,
            timed_out=done is None,
            timeout=limit,
            output_omitted=omitted,
        )

    return attempt


def background_attempt(cmd: str, workdir: str, limit: float | None) -> Attempt[CommandResult]:
    """Start a command and return at once; its output goes to a log file in the sandbox."""
    log_path = f"{OUTPUT_DIR}/command-{uuid.uuid4().hex[:10]}.log"
    # `exec` redirects the shell itself, so the pid the SDK reports is the command's own process
    # (bash execs a final simple command) and `kill <pid>` stops it.
    wrapped = f"mkdir -p {OUTPUT_DIR} && exec >{log_path} 2>&1\n{cmd}"

    def attempt(sandbox: Any) -> Steps[CommandResult]:
        handle = yield Call(
            lambda: sandbox.commands.run(wrapped, background=True, cwd=workdir, timeout=limit or 0)
        )
        yield Call(handle.disconnect)
        return CommandResult(
            command=cmd,
            sandbox_id=sandbox.sandbox_id,
            timeout=limit,
            pid=handle.pid,
            log_path=log_path,
        )

    return attempt


def file_attempt(op: FileCall[T], target: str) -> Attempt[T]:
    """A file operation; a missing path is the model's to fix, not a sign the sandbox is gone."""

    def attempt(sandbox: Any) -> Steps[T]:
        try:
            return (yield from op(sandbox, target))
        except FileNotFoundException as exc:
            raise E2BFileNotFoundError(target) from exc

    return attempt


def _entry(info: Any) -> FileEntry:
    return FileEntry(
        path=str(info.path),
        name=str(info.name),
        is_dir=info.type == FileType.DIR,
        size=int(getattr(info, "size", 0) or 0),
    )


def read(sandbox: Any, target: str) -> Steps[bytes]:
    """Read a file's bytes."""
    return bytes((yield Call(lambda: sandbox.files.read(target, format="bytes"))))


def write(data: str | bytes) -> FileCall[str]:
    """Write ``data`` to a file; the path written."""

    def op(sandbox: Any, target: str) -> Steps[str]:
        info = yield Call(lambda: sandbox.files.write(target, data))
        return str(info.path or target)

    return op


def info(sandbox: Any, target: str) -> Steps[FileEntry]:
    """Stat one path."""
    return _entry((yield Call(lambda: sandbox.files.get_info(target))))


def listing(depth: int) -> FileCall[list[FileEntry]]:
    """List a directory ``depth`` levels deep, sorted by path."""

    def op(sandbox: Any, target: str) -> Steps[list[FileEntry]]:
        entries = yield Call(lambda: sandbox.files.list(target, depth=depth))
        return sorted((_entry(e) for e in entries), key=lambda e: e.path)

    return op
