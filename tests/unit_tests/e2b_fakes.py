"""Small hand-written fakes of the E2B SDK surface the session uses (unit tests only).

Code "runs" with Python's own ``exec`` in a namespace per fake sandbox, so state persists between
calls like in a kernel. A few magic snippets trigger the cases a real sandbox produces:
``TIMEOUT`` (the execution times out), ``IMAGE`` (a PNG result). Commands understand
``echo TEXT``, ``fail N`` (exit code N), ``slow`` (times out) and anything else prints nothing.
"""

from __future__ import annotations

import ast
import base64
import itertools
import traceback
from dataclasses import dataclass, field
from typing import Any

from e2b import (
    CommandExitException,
    FileNotFoundException,
    FileType,
    SandboxNotFoundException,
    TimeoutException,
)
from e2b_code_interpreter import Execution, ExecutionError, OutputMessage, Result

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@dataclass
class FakeBox:
    """State of one fake sandbox."""

    sandbox_id: str
    template: str
    metadata: dict[str, str]
    envs: dict[str, str] | None
    alive: bool = True
    namespace: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    count: int = 0
    timeouts: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


class FakeBackend:
    """Everything the fake SDK classes share: the sandboxes and a log of control-plane calls."""

    def __init__(self) -> None:
        self.boxes: dict[str, FakeBox] = {}
        self.created: list[str] = []
        self.killed: list[str] = []
        self.connected: list[str] = []
        self.options: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def create(self, template: str, metadata: dict[str, str], envs: Any, **opts: Any) -> FakeBox:
        self.options.append(opts)
        box = FakeBox(f"sbx-{next(self._ids)}", template, dict(metadata), envs)
        self.boxes[box.sandbox_id] = box
        self.created.append(box.sandbox_id)
        return box

    def live(self, sandbox_id: str) -> FakeBox:
        box = self.boxes.get(sandbox_id)
        if box is None or not box.alive:
            raise SandboxNotFoundException(f"Sandbox {sandbox_id} not found")
        return box

    def kill(self, sandbox_id: str) -> bool:
        self.killed.append(sandbox_id)
        box = self.boxes.get(sandbox_id)
        if box is None or not box.alive:
            return False
        box.alive = False
        return True

    def running(self) -> list[str]:
        return [b.sandbox_id for b in self.boxes.values() if b.alive]


def _gone_check(box: FakeBox) -> None:
    # What the SDK raises when the proxy answers 502 for a dead sandbox on /execute.
    if not box.alive:
        raise TimeoutException("The sandbox was not found: This error is likely due to timeout")


def run_cell(box: FakeBox, code: str, on_stdout: Any, on_stderr: Any) -> Execution:
    """Execute ``code`` in the box's namespace the way a kernel would, streaming prints."""
    _gone_check(box)
    box.count += 1  # a kernel counts an interrupted cell too
    if "TIMEOUT" in code:
        on_stdout(OutputMessage("before timeout\n", 0, False))
        raise TimeoutException("Execution timed out")
    execution = Execution(execution_count=box.count)

    def fake_print(*args: Any, sep: str = " ", end: str = "\n", **_: Any) -> None:
        text = sep.join(str(a) for a in args) + end
        execution.logs.stdout.append(text)
        on_stdout(OutputMessage(text, 0, False))

    box.namespace["print"] = fake_print
    if "IMAGE" in code:
        execution.results.append(Result(png=PNG_1PX, text="<Figure>"))
    try:
        tree = ast.parse(code)
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()
        exec(compile(tree, "<cell>", "exec"), box.namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), box.namespace)
            if value is not None:
                execution.results.append(Result(text=repr(value), is_main_result=True))
    except Exception as exc:
        execution.error = ExecutionError(
            type(exc).__name__, str(exc), "\x1b[0;31m" + traceback.format_exc() + "\x1b[0m"
        )
    return execution


def run_command(box: FakeBox, cmd: str, on_stdout: Any, on_stderr: Any) -> Any:
    if not box.alive:
        from e2b import SandboxNotRunningException

        raise SandboxNotRunningException("sandbox is not running")
    box.commands.append(cmd)
    if cmd.startswith("slow"):
        if on_stdout:
            on_stdout("partial\n")
        raise TimeoutException("deadline_exceeded")
    if cmd.startswith("fail"):
        code = int(cmd.split()[1])
        if on_stderr:
            on_stderr("boom\n")
        raise CommandExitException(stdout="", stderr="boom\n", exit_code=code, error=None)
    out = cmd[5:] + "\n" if cmd.startswith("echo ") else ""
    if out and on_stdout:
        on_stdout(out)
    return _Done(stdout=out, stderr="", exit_code=0, error=None)


@dataclass
class _Done:
    stdout: str
    stderr: str
    exit_code: int
    error: str | None


@dataclass
class _Entry:
    name: str
    path: str
    type: FileType
    size: int


class _Files:
    def __init__(self, box: FakeBox) -> None:
        self.box = box

    def read(self, path: str, format: str = "text") -> Any:
        _gone_check(self.box)
        if path not in self.box.files:
            raise FileNotFoundException(f"{path} not found")
        data = self.box.files[path]
        return bytearray(data) if format == "bytes" else data.decode()

    def write(self, path: str, data: str | bytes) -> Any:
        _gone_check(self.box)
        self.box.files[path] = data.encode() if isinstance(data, str) else bytes(data)
        return _Entry(path.rsplit("/", 1)[-1], path, FileType.FILE, len(self.box.files[path]))

    def _dirs(self) -> set[str]:
        dirs = set()
        for path in self.box.files:
            parts = path.split("/")[1:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/" + "/".join(parts[:i]))
        return dirs

    def get_info(self, path: str) -> Any:
        _gone_check(self.box)
        if path in self.box.files:
            return _Entry(path.rsplit("/", 1)[-1], path, FileType.FILE, len(self.box.files[path]))
        if path in self._dirs():
            return _Entry(path.rsplit("/", 1)[-1], path, FileType.DIR, 0)
        raise FileNotFoundException(f"{path} not found")

    def list(self, path: str, depth: int = 1) -> list[Any]:
        _gone_check(self.box)
        if path not in self._dirs():
            raise FileNotFoundException(f"{path} not found")
        prefix = path.rstrip("/") + "/"
        out: dict[str, Any] = {}
        for file, data in self.box.files.items():
            if not file.startswith(prefix):
                continue
            parts = file[len(prefix) :].split("/")
            for level in range(1, min(depth, len(parts)) + 1):
                sub = prefix + "/".join(parts[:level])
                is_file = level == len(parts)
                out[sub] = _Entry(
                    parts[level - 1], sub, FileType.FILE if is_file else FileType.DIR, len(data)
                )
        return list(out.values())


class _Handle:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def disconnect(self) -> None:
        pass


class _Commands:
    def __init__(self, box: FakeBox) -> None:
        self.box = box

    def run(
        self,
        cmd: str,
        background: bool = False,
        cwd: str | None = None,
        timeout: float | None = None,
        on_stdout: Any = None,
        on_stderr: Any = None,
    ) -> Any:
        if background:
            self.box.commands.append(cmd)
            return _Handle(4242)
        return run_command(self.box, cmd, on_stdout, on_stderr)


class FakeSandbox:
    """Synchronous fake of ``e2b_code_interpreter.Sandbox``."""

    default_template = "code-interpreter-v1"
    backend: FakeBackend

    def __init__(self, box: FakeBox) -> None:
        self.box = box
        self.sandbox_id = box.sandbox_id
        self.files = _Files(box)
        self.commands = _Commands(box)

    @classmethod
    def create(
        cls, template: str, timeout: int, metadata: dict[str, str], envs: Any, **opts: Any
    ) -> FakeSandbox:
        return cls(cls.backend.create(template, metadata, envs, **opts))

    @classmethod
    def connect(cls, sandbox_id: str, timeout: int | None = None, **opts: Any) -> FakeSandbox:
        box = cls.backend.live(sandbox_id)
        cls.backend.connected.append(sandbox_id)
        return cls(box)

    @classmethod
    def kill(cls, sandbox_id: str, **opts: Any) -> bool:
        return cls.backend.kill(sandbox_id)

    def set_timeout(self, seconds: int) -> None:
        self.backend.live(self.sandbox_id).timeouts.append(seconds)

    def is_running(self, request_timeout: float | None = None) -> bool:
        return self.box.alive

    def run_code(
        self,
        code: str,
        language: str | None = None,
        on_stdout: Any = None,
        on_stderr: Any = None,
        timeout: float | None = None,
    ) -> Execution:
        if language not in (None, "python"):
            from e2b import SandboxException

            raise SandboxException(f"404: no kernel for {language}")
        return run_cell(self.box, code, on_stdout or (lambda m: None), on_stderr)


class _AsyncFiles:
    def __init__(self, box: FakeBox) -> None:
        self._files = _Files(box)

    async def read(self, path: str, format: str = "text") -> Any:
        return self._files.read(path, format)

    async def write(self, path: str, data: str | bytes) -> Any:
        return self._files.write(path, data)

    async def get_info(self, path: str) -> Any:
        return self._files.get_info(path)

    async def list(self, path: str, depth: int = 1) -> list[Any]:
        return self._files.list(path, depth)


class _AsyncHandle(_Handle):
    async def disconnect(self) -> None:  # type: ignore[override]
        pass


class _AsyncCommands:
    def __init__(self, box: FakeBox) -> None:
        self.box = box

    async def run(
        self,
        cmd: str,
        background: bool = False,
        cwd: str | None = None,
        timeout: float | None = None,
        on_stdout: Any = None,
        on_stderr: Any = None,
    ) -> Any:
        if background:
            self.box.commands.append(cmd)
            return _AsyncHandle(4242)
        chunks: list[tuple[Any, str]] = []
        try:
            return run_command(
                self.box,
                cmd,
                (lambda t: chunks.append((on_stdout, t))) if on_stdout else None,
                (lambda t: chunks.append((on_stderr, t))) if on_stderr else None,
            )
        finally:
            for callback, text in chunks:
                await callback(text)


class FakeAsyncSandbox:
    """Asynchronous fake of ``e2b_code_interpreter.AsyncSandbox``."""

    default_template = "code-interpreter-v1"
    backend: FakeBackend

    def __init__(self, box: FakeBox) -> None:
        self.box = box
        self.sandbox_id = box.sandbox_id
        self.files = _AsyncFiles(box)
        self.commands = _AsyncCommands(box)

    @classmethod
    async def create(
        cls, template: str, timeout: int, metadata: dict[str, str], envs: Any, **opts: Any
    ) -> FakeAsyncSandbox:
        import asyncio

        await asyncio.sleep(0.01)  # a real create yields to the loop: parallel calls overlap
        return cls(cls.backend.create(template, metadata, envs, **opts))

    @classmethod
    async def connect(
        cls, sandbox_id: str, timeout: int | None = None, **opts: Any
    ) -> FakeAsyncSandbox:
        box = cls.backend.live(sandbox_id)
        cls.backend.connected.append(sandbox_id)
        return cls(box)

    @classmethod
    async def kill(cls, sandbox_id: str, **opts: Any) -> bool:
        return cls.backend.kill(sandbox_id)

    async def set_timeout(self, seconds: int) -> None:
        self.backend.live(self.sandbox_id).timeouts.append(seconds)

    async def is_running(self, request_timeout: float | None = None) -> bool:
        return self.box.alive

    async def run_code(
        self,
        code: str,
        language: str | None = None,
        on_stdout: Any = None,
        on_stderr: Any = None,
        timeout: float | None = None,
    ) -> Execution:
        messages: list[Any] = []
        try:
            return run_cell(self.box, code, messages.append, on_stderr)
        finally:
            for message in messages:
                if on_stdout is not None:
                    await on_stdout(message)
