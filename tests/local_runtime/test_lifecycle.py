"""Sandboxes leave nothing behind: processes, jails and directories go with them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2b import Sandbox

from langchain_e2b.local import LocalRuntime


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_fifty_sandboxes_leave_nothing(tmp_path: Path) -> None:
    with LocalRuntime(pool_size=0, data_dir=tmp_path / "data") as runtime:
        before = _descendants(os.getpid())
        opts = runtime.connection_options()
        for _ in range(50):
            sandbox = Sandbox.create(template="base", **opts)
            sandbox.commands.run("sleep 300 &", background=True)
            assert sandbox.kill()
        assert _descendants(os.getpid()) - before == set()
        assert list((tmp_path / "data" / "sandboxes").iterdir()) == []
    assert not (tmp_path / "data" / "sandboxes").exists() or not any(
        (tmp_path / "data" / "sandboxes").iterdir()
    )


def test_stopping_runtime_kills_every_sandbox() -> None:
    runtime = LocalRuntime(pool_size=1).start()
    before = _descendants(os.getpid())
    data_dir = runtime.gateway.data_dir if runtime.gateway else None
    sandbox = Sandbox.create(template="base", **runtime.connection_options())
    sandbox.commands.run("sleep 600", background=True)
    assert _descendants(os.getpid()) - before
    runtime.stop()
    leftover = _descendants(os.getpid())
    assert leftover <= before
    assert data_dir is not None
    assert not data_dir.exists()


def test_serve_prints_exports_and_stops_on_interrupt(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_e2b", "local", "serve", "--port", "0", "--pool", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(5)] if proc.stdout else []
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        assert set(exports) == {"E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"}
        sandbox = Sandbox.create(
            template="base",
            api_key=exports["E2B_API_KEY"],
            api_url=exports["E2B_API_URL"],
            sandbox_url=exports["E2B_SANDBOX_URL"],
        )
        assert sandbox.commands.run("echo ok").stdout == "ok\n"
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("serve did not stop on Ctrl-C")
