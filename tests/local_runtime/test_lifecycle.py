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
        lines = _announcement(proc)
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


def _announcement(proc: subprocess.Popen[str]) -> list[str]:
    """What ``local serve`` prints on stdout up to its "Press Ctrl-C" line."""
    lines: list[str] = []
    while proc.stdout is not None and (line := proc.stdout.readline()):
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    return lines


def test_serve_takes_limits_and_the_key_from_a_file_or_the_environment(tmp_path: Path) -> None:
    key = "e2b_" + "5a" * 20
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    limits = ["--memory", "512M", "--cpus", "1", "--processes", "100", "--disk", "256M"]
    cmd = [sys.executable, "-m", "langchain_e2b", "local", "serve", "--pool", "0"]
    env = {k: v for k, v in os.environ.items() if k != "E2B_API_KEY"}
    proc = subprocess.Popen(
        [*cmd, "--api-key-file", str(key_file), *limits],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = _announcement(proc)
        assert (
            "Per-sandbox limits: memory 512 MiB, 1 CPUs, 100 processes, disk 256 MiB; "
            "internet off.\n"
        ) in lines
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        assert exports["E2B_API_KEY"] == key
        options = {"api_url": exports["E2B_API_URL"], "sandbox_url": exports["E2B_SANDBOX_URL"]}
        sandbox = Sandbox.create(template="base", api_key=key, **options)
        try:
            size_kib = sandbox.commands.run("df -k --output=size /tmp | tail -1").stdout
            assert int(size_kib) == 256 * 1024
        finally:
            sandbox.kill()
    finally:
        proc.send_signal(2)
        proc.wait(timeout=60)

    # From the environment, in a shape some SDK releases refuse: accepted, with a warning.
    proc = subprocess.Popen(
        [*cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "E2B_API_KEY": "local-key"},
    )
    try:
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in _announcement(proc)
            if line.startswith("export ")
        )
        assert exports["E2B_API_KEY"] == "local-key"
    finally:
        proc.send_signal(2)
        _, err = proc.communicate(timeout=60)
    assert "client-side API key check" in err
