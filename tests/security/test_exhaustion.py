"""Hostile code tries to exhaust the host; each attack meets its limit and others keep working."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from e2b import InvalidArgumentException, TimeoutException
from e2b_code_interpreter import Sandbox

from langchain_e2b import E2BSandboxSession
from langchain_e2b.tools import E2BCodeInterpreterTool, E2BShellTool
from tests.security.conftest import HOSTILE_LIMITS, Hostile, MiB, py, sh


@pytest.fixture(scope="module")
def bystander(hostile: Hostile) -> Sandbox:
    """Another sandbox on the same runtime, which must keep working through every attack."""
    sandbox = hostile.sandbox()
    py(sandbox, "state = 'kept'")
    return sandbox


@pytest.fixture
def attacker(hostile: Hostile) -> Sandbox:
    return hostile.sandbox()


def _serves(sandbox: Sandbox) -> bool:
    return py(sandbox, "print(state, 6 * 7)").split() == ["kept", "42"]


def _process_count(sandbox: Sandbox) -> int:
    # Right after a fork bomb is killed, its processes take a moment to be reaped; until then
    # the sandbox is at its process limit and cannot start the counting shell.
    for _ in range(100):
        try:
            return int(sh(sandbox, "ls -d /proc/[0-9]* | wc -l")[1])
        except InvalidArgumentException as exc:
            if "Resource temporarily unavailable" not in str(exc):
                raise
            time.sleep(0.1)
    raise AssertionError("the sandbox stayed at its process limit after the fork bomb ended")


def test_fork_bomb_meets_the_process_limit(
    hostile: Hostile, attacker: Sandbox, bystander: Sandbox
) -> None:
    baseline = _process_count(attacker)
    served: list[bool] = []

    def meanwhile() -> None:
        served.append(_serves(bystander))

    def detonate() -> None:
        # A classic bash fork bomb; the command's timeout kills its process group.
        with contextlib.suppress(TimeoutException):
            sh(attacker, "bomb() { bomb | bomb & }; bomb; sleep 60", timeout=8)

    bomb = threading.Thread(target=detonate)
    bomb.start()
    helper = threading.Thread(target=meanwhile)
    helper.start()
    helper.join()
    bomb.join()
    assert served == [True], "another sandbox stopped serving during the fork bomb"
    # Everything the bomb forked is gone once its command timed out.
    count = _process_count(attacker)
    for _ in range(50):
        if count <= baseline:
            break
        time.sleep(0.1)
        count = _process_count(attacker)
    assert count <= baseline
    # The sandbox itself still works, and cannot have more processes than its limit.
    code, out, _ = sh(attacker, "ulimit -u")
    assert int(out) == HOSTILE_LIMITS.processes
    assert code == 0


def test_python_fork_bomb_hits_the_limit(attacker: Sandbox) -> None:
    out = py(
        attacker,
        """
import os, time
children, error = [], None
try:
    for _ in range(100_000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    error = exc.strerror
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(len(children), error)
""",
    )
    forked, _, error = out.strip().partition(" ")
    assert int(forked) < HOSTILE_LIMITS.processes
    assert error == "Resource temporarily unavailable"


def test_memory_bomb_is_a_memory_error(attacker: Sandbox, bystander: Sandbox) -> None:
    py(attacker, "x = 'still here'")
    for code in (
        "big = bytearray(8 * 1024**3)",
        "hog = []\nwhile True:\n    hog.append(bytearray(32 * 1024**2))",
    ):
        execution = attacker.run_code(code, timeout=120)
        assert execution.error is not None
        assert execution.error.name == "MemoryError"
        py(attacker, "hog = None")
    # The kernel survived with its state: only the allocation failed.
    assert py(attacker, "print(x)").strip() == "still here"
    code, _, err = sh(attacker, "python3 -c 'b = bytearray(8 * 1024**3)'")
    assert code == 1
    assert "MemoryError" in err
    assert _serves(bystander)


@pytest.mark.parametrize("where", ["/home/user", "/tmp", "/dev/shm", "", "/opt", "/root"])
def test_disk_fill_stops_at_the_size_limit(attacker: Sandbox, where: str) -> None:
    # Many files, each below the file-size limit, so only the filesystem's size can stop them.
    code, _, err = sh(
        attacker,
        f"for i in $(seq 1 40); do head -c {8 * MiB} /dev/zero > {where}/fill$i || exit 1; done",
    )
    assert code != 0
    assert "No space left on device" in err
    _, out, _ = sh(attacker, f"du -smx {where or '/'} | cut -f1")
    assert int(out) <= HOSTILE_LIMITS.disk_bytes // MiB
    sh(attacker, f"rm -f {where}/fill*")
    assert sh(attacker, f"echo ok > {where}/after && cat {where}/after")[1].strip() == "ok"


@pytest.mark.parametrize("where", ["/dev", "/usr", "/etc"])
def test_no_unbounded_writable_area(attacker: Sandbox, where: str) -> None:
    base = where.rstrip("/")
    code, _, err = sh(attacker, f"mkdir {base}/fill && head -c 1000 /dev/zero > {base}/fill/x")
    assert code != 0, f"{where} is writable: a sandbox could fill the host's memory there"
    assert "Read-only file system" in err or "Permission denied" in err


def test_one_huge_file_stops_at_the_file_size_limit(attacker: Sandbox) -> None:
    code, _, err = sh(attacker, f"head -c {2 * HOSTILE_LIMITS.disk_bytes} /dev/zero > big")
    assert code != 0
    assert "File size limit exceeded" in err or "No space left on device" in err
    sh(attacker, "rm -f big")


def test_infinite_loop_is_interrupted_by_its_timeout(attacker: Sandbox, bystander: Sandbox) -> None:
    py(attacker, "x = 'still here'")
    with pytest.raises(TimeoutException):
        attacker.run_code("while True:\n    pass", timeout=3)
    assert _serves(bystander)
    # Interrupted, not restarted: the kernel kept its state and runs the next cell.
    assert py(attacker, "print(x)").strip() == "still here"
    with pytest.raises(TimeoutException):
        attacker.commands.run("echo le2b_spin; while :; do :; done", timeout=3)
    # The bracket keeps the pattern from matching this command's own shell.
    _, out, _ = sh(attacker, "ps -e -o args= | grep -c '[l]e2b_spin' || true")
    assert int(out) == 0


def test_huge_print_through_the_tools(hostile: Hostile, bystander: Sandbox) -> None:
    with E2BSandboxSession(**hostile.options, max_output_chars=5_000) as session:
        code_tool = E2BCodeInterpreterTool(session=session)
        message = code_tool.invoke(_call("run_code", code="print('x' * 200_000_000)"))
        text = _text(message.content)
        assert len(text) < 10_000  # the model's context is protected either way
        # Either the output is truncated and says so, or the kernel hit its memory limit and
        # the model is told, in words, that it died and its state is gone.
        assert "truncated" in text.lower() or "state" in text.lower()
        assert _serves(bystander)
        follow_up = code_tool.invoke(_call("run_code", code="print(6 * 7)"))
        assert "42" in _text(follow_up.content)


def test_huge_command_output_when_the_sandbox_disk_is_small(hostile: Hostile) -> None:
    with E2BSandboxSession(**hostile.options, max_output_chars=5_000) as session:
        shell = E2BShellTool(session=session)
        message = shell.invoke(
            _call("run_command", command=f"head -c {200 * MiB} /dev/zero | tr '\\0' x")
        )
        text = _text(message.content)
        assert len(text) < 10_000
        assert "truncated" in text.lower()


def test_huge_file_downloads_as_a_stream(hostile: Hostile, attacker: Sandbox) -> None:
    size = 48 * MiB
    sh(attacker, f"head -c {size} /dev/urandom > /home/user/huge.bin")
    before = _rss()
    received, peak = 0, before
    for chunk in attacker.files.read("/home/user/huge.bin", format="stream"):
        received += len(chunk)
        peak = max(peak, _rss())
    assert received == size
    # Neither the gateway (in this process) nor the client held the whole file at once.
    assert peak - before < size // 2


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _call(name: str, **args: object) -> dict[str, object]:
    return {"type": "tool_call", "id": "call-1", "name": name, "args": args}


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    assert isinstance(content, list)
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))
