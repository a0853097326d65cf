"""Fault tests: a runtime of their own, and a count of everything that could leak."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from langchain_e2b import E2BSandboxSession
from langchain_e2b.local import LocalRuntime


@dataclass(frozen=True)
class Resources:
    """What the host holds for the runtime's sandboxes, counted from outside."""

    processes: int
    """The runtime's jails and every process in them (agents, kernels, user processes)."""
    kernels: int
    sandbox_dirs: int
    """Per-sandbox directories and sockets in the runtime's data and run directories."""
    fds: int
    """Open file descriptors of this process (the gateway runs in it)."""


def descendants(root: int | None = None) -> list[tuple[int, str]]:
    """(pid, command line) of every live process below ``root`` (this process by default)."""
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                cmdlines[int(name)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            parents[int(name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found: list[tuple[int, str]] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                found.append((pid, cmdlines.get(pid, "")))
                frontier.append(pid)
    return found


def runtime_processes(runtime: LocalRuntime) -> list[tuple[int, str]]:
    """The runtime's jails (their command lines name its run directory) and all below them."""
    assert runtime.gateway is not None
    marker = str(runtime.gateway._run_dir)
    found: list[tuple[int, str]] = []
    for pid, cmd in descendants():
        if marker in cmd and pid not in {p for p, _ in found}:
            found.append((pid, cmd))
            found.extend(p for p in descendants(pid) if p not in found)
    return found


def count(runtime: LocalRuntime) -> Resources:
    """Count the runtime's resources now."""
    procs = runtime_processes(runtime)
    assert runtime.gateway is not None
    dirs = [runtime.gateway.data_dir / "sandboxes", runtime.gateway._sock_dir]
    return Resources(
        processes=len(procs),
        kernels=sum("kernelapp" in cmd for _, cmd in procs),
        sandbox_dirs=sum(len(os.listdir(d)) for d in dirs if d.is_dir()),
        fds=len(os.listdir("/proc/self/fd")),
    )


def settle(runtime: LocalRuntime, baseline: Resources, *, fd_slack: int = 0) -> Resources:
    """Wait (bounded) for the counts to come back to ``baseline``; return the last counts.

    Sandboxes are reaped asynchronously and connections closed by their peers go away a
    little later, so the counts are polled rather than read once.
    """
    now = count(runtime)
    for _ in range(200):
        if _within(now, baseline, fd_slack):
            break
        time.sleep(0.05)
        now = count(runtime)
    return now


def _within(now: Resources, baseline: Resources, fd_slack: int) -> bool:
    return (
        now.processes <= baseline.processes
        and now.kernels <= baseline.kernels
        and now.sandbox_dirs <= baseline.sandbox_dirs
        and now.fds <= baseline.fds + fd_slack
    )


def assert_no_leaks(runtime: LocalRuntime, baseline: Resources) -> None:
    """Everything a scenario started is gone again: processes, kernels, directories, fds."""
    now = settle(runtime, baseline, fd_slack=FD_SLACK)
    assert now.processes <= baseline.processes, runtime_processes(runtime)
    assert now.kernels <= baseline.kernels
    assert now.sandbox_dirs <= baseline.sandbox_dirs
    assert now.fds <= baseline.fds + FD_SLACK, os.listdir("/proc/self/fd")


# Idle keep-alive connections the SDK's shared HTTP pools may keep to the runtime (each is a
# client and a server socket in this process); a leak per sandbox or per call exceeds it.
FD_SLACK = 4


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    """A runtime without a warm pool, so every sandbox is one the test made.

    A session runs first: the SDK's shared HTTP pool and the like are opened once per process,
    not per sandbox, and must not count as leaks of the first test.
    """
    with LocalRuntime(pool_size=0) as started:
        with E2BSandboxSession(**started.connection_options()) as session:
            session.run_code("1")
            session.run_command("true")
        yield started


@pytest.fixture
def baseline(runtime: LocalRuntime) -> Resources:
    """The counts before a test, once previous tests' sandboxes are gone."""
    empty = Resources(processes=0, kernels=0, sandbox_dirs=0, fds=10**6)
    before = settle(runtime, empty)
    assert (before.processes, before.kernels, before.sandbox_dirs) == (0, 0, 0)
    return before


@pytest.fixture
def make_session(runtime: LocalRuntime) -> Iterator[Any]:
    """Sessions on the reliability runtime, closed at the end of the test."""
    made: list[E2BSandboxSession] = []

    def factory(**options: Any) -> E2BSandboxSession:
        session = E2BSandboxSession(**runtime.connection_options(), **options)
        made.append(session)
        return session

    yield factory
    for session in made:
        session.close()
