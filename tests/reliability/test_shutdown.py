"""Stopping the server: SIGTERM is as clean as Ctrl-C, and a new runtime removes a killed one's
leftovers (directories, processes, cgroups, uid reservations) but never a live runtime's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime, cgroups, reservations
from tests.reliability.local_server import Server, alive, gone, serve

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers a test starts; killed at the end whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _uid_files_of(pid: int) -> list[Path]:
    """The uid reservations a runtime process holds (each lock file names its pid)."""
    directory = reservations.state_dir() / "uids"
    found = []
    for path in directory.iterdir() if directory.is_dir() else []:
        try:
            owner = path.read_text().split()[0]
        except (OSError, IndexError):
            continue
        if owner == str(pid):
            found.append(path)
    return found


def _snapshot(server: Server) -> dict[str, list[str]]:
    return {
        "sandbox dirs": [str(p) for p in server.sandbox_dirs()],
        "run dirs": [str(p) for p in server.run_dirs() if p.exists()],
        "cgroups": [str(p) for p in server.cgroup_dirs() if p.exists()],
        "uid reservations": [str(p) for p in _uid_files_of(server.proc.pid)],
    }


def _uids_in_use() -> set[str]:
    """Uids of live processes (not zombies, which init reaps a little after their parent)."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and alive(int(name)):
            with contextlib.suppress(OSError):
                found.add(str(os.stat(f"/proc/{name}").st_uid))
    return found


def _still_there(
    before: dict[str, list[str]], pid: int, *, dead: bool = False
) -> dict[str, list[str]]:
    there = {kind: [p for p in paths if Path(p).exists()] for kind, paths in before.items()}
    # Another runtime may hold the same uid again by now: its lock file names that runtime.
    files = _uid_files_of(pid)
    if dead:
        # A dead runtime's reservation stays while a live process runs as its uid.
        in_use = _uids_in_use()
        files = [p for p in files if p.name not in in_use]
    there["uid reservations"] = [str(p) for p in files]
    return there


def test_sigterm_is_as_clean_as_ctrl_c(servers: list[Server], tmp_path: Path) -> None:
    server = serve(tmp_path / "data", pool=1)
    servers.append(server)
    sandboxes = [Sandbox.create(**server.options) for _ in range(2)]
    assert sandboxes[0].run_code("1 + 1").text == "2"
    sandboxes[1].commands.run("sleep 600", background=True)
    processes = server.processes()
    before = _snapshot(server)
    # Two sandboxes and the warm one, each with files, a run directory and (as root) cgroups.
    assert len(before["sandbox dirs"]) >= 2, before
    assert before["run dirs"], before
    if os.geteuid() == 0:
        assert before["cgroups"], before
        assert len(before["uid reservations"]) >= 2, before

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    assert gone(processes) == []
    assert _still_there(before, server.proc.pid) == {kind: [] for kind in before}
    # Also what was being made when the signal came (the warm pool refilling).
    assert server.sandbox_dirs() == []
    assert _uid_files_of(server.proc.pid) == []


@pytest.fixture
def other_memory_cgroup() -> Iterator[Path | None]:
    """A memory cgroup other than this process's (as another login session has), if root."""
    memory = [h for h in cgroups.detect() if "memory" in h.controllers and h.version == 1]
    if os.geteuid() != 0 or not memory:
        yield None
        return
    directory = memory[0].base / f"le2b-test-{os.getpid()}"
    directory.mkdir()
    yield directory
    for pid in directory.joinpath("cgroup.procs").read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    for _ in range(200):
        with contextlib.suppress(OSError):
            directory.rmdir()
            break
        time.sleep(0.05)
    assert not directory.exists()


def test_a_new_runtime_removes_a_killed_ones_leftovers_but_not_a_live_ones(
    servers: list[Server], tmp_path: Path, other_memory_cgroup: Path | None
) -> None:
    # The killed runtime ran in another memory cgroup: its sandboxes' cgroups are there.
    dead = serve(tmp_path / "dead", pool=0, cgroup=other_memory_cgroup)
    live = serve(tmp_path / "live", pool=0)
    servers += [dead, live]
    dead_sandbox = Sandbox.create(**dead.options)
    dead_sandbox.commands.run("sleep 600", background=True)
    live_sandbox = Sandbox.create(**live.options)
    live_sandbox.run_code("x = 41")
    dead_processes = dead.processes()
    dead_before, live_before = _snapshot(dead), _snapshot(live)
    assert len(dead_before["sandbox dirs"]) == 1, dead_before
    assert len(live_before["sandbox dirs"]) == 1, live_before
    if other_memory_cgroup is not None:
        assert any(str(other_memory_cgroup) in p for p in dead_before["cgroups"]), dead_before
    if os.geteuid() == 0:
        assert dead_before["cgroups"], dead_before
        assert live_before["cgroups"], live_before
        assert dead_before["uid reservations"], dead_before

    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait(timeout=30)
    # Its jails die with it (bubblewrap's --die-with-parent); its files and cgroups stay.
    assert gone(dead_processes) == []
    left = _still_there(dead_before, dead.proc.pid)
    assert left["sandbox dirs"], "SIGKILL left nothing to clean up"
    assert left["run dirs"]
    if os.geteuid() == 0:
        assert left["cgroups"]
        assert left["uid reservations"]

    with LocalRuntime(pool_size=0) as fresh:
        left = _still_there(dead_before, dead.proc.pid, dead=True)
        assert left == {kind: [] for kind in dead_before}
        assert _still_there(live_before, live.proc.pid) == live_before
        assert live_sandbox.run_code("x + 1").text == "42"
        sandbox = Sandbox.create(**fresh.connection_options())
        assert sandbox.run_code("2 + 2").text == "4"
        sandbox.kill()
    assert _snapshot(live) == live_before
