"""``langchain-e2b local serve`` in a child process, and what it holds on the host, from outside.

Everything here is found without the runtime's help (its record is not read): its jails by
parentage, its run directory from their command lines, its cgroups from ``/proc/<pid>/cgroup``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_e2b.local import cgroups
from tests.reliability.conftest import descendants

START_TIMEOUT = 120.0


@dataclass
class Server:
    """A runtime serving in a child process."""

    proc: subprocess.Popen[str]
    url: str
    api_key: str
    data_dir: Path

    @property
    def options(self) -> dict[str, str]:
        """SDK connection options for this runtime."""
        return {"api_key": self.api_key, "api_url": self.url, "sandbox_url": self.url}

    def processes(self) -> list[int]:
        """Pids of every process below the server (jails, agents, kernels, user processes)."""
        return [pid for pid, _ in descendants(self.proc.pid)]

    def run_dirs(self) -> set[Path]:
        """The runtime's run directory, read from its jails' command lines."""
        found = set()
        for _, cmd in descendants(self.proc.pid):
            match = re.search(r"(/[^ ]*/le2b-[^/ ]+)/", cmd)
            if match:
                found.add(Path(match.group(1)))
        return found

    def sandbox_dirs(self) -> list[Path]:
        """Per-sandbox directories in its data directory."""
        sandboxes = self.data_dir / "sandboxes"
        return sorted(sandboxes.iterdir()) if sandboxes.is_dir() else []

    def cgroup_dirs(self) -> set[Path]:
        """The cgroups its jails' processes are in, other than the server's own."""
        own = process_cgroups(self.proc.pid)
        found: set[Path] = set()
        for pid in self.processes():
            found |= process_cgroups(pid) - own
        return found

    def stop(self) -> None:
        """Kill the server and everything below it, whatever state it is in."""
        pids = self.processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


def process_cgroups(pid: int) -> set[Path]:
    """The directories of every cgroup a process is in (all mounted hierarchies)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return set()
    paths: dict[str, str] = {}
    for line in lines:
        _, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        for name in names.split(",") if names else [""]:
            paths[name] = path
    found = set()
    for fstype, root, mountpoint, options in cgroups._mounts():
        keys = [n for n in options if n in paths] if fstype == "cgroup" else [""]
        if keys and keys[0] in paths:
            found.add(cgroups._join(mountpoint, root, paths[keys[0]]))
    return found


def serve(
    data_dir: Path, *, pool: int = 1, extra: tuple[str, ...] = (), cgroup: Path | None = None
) -> Server:
    """Start ``langchain-e2b local serve`` and wait until it prints its URL.

    With ``cgroup`` (a cgroup directory), the server starts in that cgroup.
    """
    procs = None if cgroup is None else str(cgroup / "cgroup.procs")
    api_key = "e2b_" + secrets.token_hex(16)
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "langchain_e2b", "local", "serve", "--pool", str(pool)]
    cmd += ["--api-key", api_key, "--data-dir", str(data_dir), *extra]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=None if procs is None else lambda: Path(procs).write_text("0") and None,
    )
    deadline = time.monotonic() + START_TIMEOUT
    assert proc.stdout is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            # Drain the rest of its output so it never blocks on a full pipe.
            _drain(proc)
            return Server(proc, match.group(1), api_key, data_dir)
    proc.kill()
    raise AssertionError("the server did not start: " + "".join(seen))


def _drain(proc: subprocess.Popen[Any]) -> None:
    def run() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    threading.Thread(target=run, daemon=True).start()


def gone(pids: list[int], seconds: float = 30.0) -> list[int]:
    """Wait (bounded) for processes to end; return those still alive."""
    deadline = time.monotonic() + seconds
    left = pids
    while True:
        left = [pid for pid in left if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
