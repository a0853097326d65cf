"""A local runtime for hostile code: small limits, canary secrets and canary files on the host.

Every attack in this package runs for real inside a sandbox of this runtime, through the real
E2B SDK. The canaries are planted on the host before the runtime starts, so a sandbox that
could read the host's environment or files would find them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2b import CommandExitException
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import Limits, LocalRuntime

MiB = 1024**2
# Small enough that exhausting them is quick, large enough for a kernel with pandas.
HOSTILE_LIMITS = Limits(memory_bytes=768 * MiB, processes=128, disk_bytes=64 * MiB)
CANARY_ENV = ("E2B_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LANGCHAIN_E2B_TEST_SECRET")


@dataclass
class Hostile:
    """The runtime under attack and the canaries planted on its host."""

    runtime: LocalRuntime
    secret: str
    """The value of every canary environment variable and the content of every canary file."""
    canary_files: list[Path]
    data_dirs: list[Path]
    sandboxes: list[Sandbox] = field(default_factory=list)

    @property
    def options(self) -> dict[str, str]:
        return self.runtime.connection_options()

    def sandbox(self, **kwargs: Any) -> Sandbox:
        """A fresh sandbox, killed when the package's tests are done."""
        sandbox = Sandbox.create(**self.options, **kwargs)
        self.sandboxes.append(sandbox)
        return sandbox

    def host_pid(self, sandbox: Sandbox) -> int:
        """The host pid of the sandbox's jail (bubblewrap, outside the jail's PID namespace)."""
        assert self.runtime.gateway is not None
        return self.runtime.gateway.sandboxes[sandbox.sandbox_id].proc.pid


@pytest.fixture(scope="package")
def hostile() -> Iterator[Hostile]:
    """A runtime started with canary secrets in the host environment and canary files on disk."""
    secret = "canary-" + secrets.token_hex(16)
    saved = {name: os.environ.get(name) for name in CANARY_ENV}
    host_tmp = Path(tempfile.mkdtemp(prefix="le2b-canary-"))
    host_tmp.chmod(0o755)
    canaries = [host_tmp / "canary.txt", Path.home() / f".le2b-canary-{secret[-8:]}"]
    for path in canaries:
        path.write_text(secret)
        path.chmod(0o644)  # world-readable: only the jail can keep it out of reach
    for name in CANARY_ENV:
        os.environ[name] = secret
    runtime = LocalRuntime(pool_size=0, limits=HOSTILE_LIMITS, api_key="e2b_" + secret)
    try:
        runtime.start()
        assert runtime.gateway is not None
        data_dirs = [runtime._data_dir, runtime.gateway._run_dir]
        state = Hostile(runtime, secret, canaries, [d for d in data_dirs if d is not None])
        yield state
        for sandbox in state.sandboxes:
            # Some are already gone: tests kill their own sandbox.
            with contextlib.suppress(Exception):
                sandbox.kill()
    finally:
        runtime.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for path in canaries:
            path.unlink(missing_ok=True)
        shutil.rmtree(host_tmp, ignore_errors=True)


# Generous on purpose: an attack that should finish in seconds can take minutes on a busy CI
# machine, and a failure should mean the defence, not the machine's load.
CALL_TIMEOUT = 180


def sh(sandbox: Sandbox, cmd: str, timeout: float = CALL_TIMEOUT) -> tuple[int, str, str]:
    """Run ``cmd`` in the sandbox; (exit code, stdout, stderr) whatever the exit code."""
    try:
        done = sandbox.commands.run(cmd, timeout=timeout)
    except CommandExitException as exc:
        return exc.exit_code, exc.stdout, exc.stderr
    return done.exit_code, done.stdout, done.stderr


def py(sandbox: Sandbox, code: str, timeout: float = CALL_TIMEOUT) -> str:
    """Run Python code in the sandbox's kernel; its stdout (the error, if any, is raised)."""
    execution = sandbox.run_code(code, timeout=timeout)
    if execution.error is not None:
        raise AssertionError(f"{execution.error.name}: {execution.error.value}")
    return "".join(execution.logs.stdout)
