"""No process in a jail holds a descriptor of a host file.

A host file reached through a descriptor escapes every limit of the sandbox's own tmpfs areas:
``fallocate`` with ``FALLOC_FL_KEEP_SIZE`` even ignores ``RLIMIT_FSIZE``. The attack tries it on
every descriptor it can reach: its own, and every other process's through ``/proc/<pid>/fd``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from e2b_code_interpreter import Sandbox

from tests.security.conftest import Hostile, MiB, py, sh

# Tries fallocate(FALLOC_FL_KEEP_SIZE) on every descriptor it can get: its own, and a fresh
# write-open of whatever any visible process has open. Prints what it reached as JSON.
ATTACK = r"""
import ctypes, json, os, stat
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
FALLOC_FL_KEEP_SIZE = 1
SIZE = {size}
me = os.getpid()
held, grown = [], []

def describe(fd, where):
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return {{"where": where, "dev": info.st_dev, "regular": stat.S_ISREG(info.st_mode)}}

def attack(fd, where):
    if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SIZE) == 0:
        grown.append(describe(fd, where))

pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
for pid in pids:
    try:
        names = os.listdir(f"/proc/{{pid}}/fd")
    except OSError:
        continue
    for name in names:
        link = f"/proc/{{pid}}/fd/{{name}}"
        try:
            target = os.readlink(link)
        except OSError:
            continue
        where = f"{{pid}}:{{name}} -> {{target}}"
        if pid == me:
            found = describe(int(name), where)
            if found:
                held.append(found)
            attack(int(name), where)
        try:
            fd = os.open(link, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            attack(fd, where + " (reopened)")
        finally:
            os.close(fd)
print(json.dumps({{"held": held, "grown": grown}}))
"""


def _host_devices(hostile: Hostile) -> set[int]:
    """Device numbers of the host filesystems a runtime's files live on."""
    paths = [Path("/"), Path(tempfile.gettempdir()), *hostile.data_dirs]
    return {os.stat(path).st_dev for path in paths if path.exists()}


def _disk_blocks(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def _host_reached(report: dict[str, list[dict[str, object]]], hosts: set[int]) -> list[object]:
    return [item["where"] for item in report["grown"] if item and item["dev"] in hosts]


@pytest.fixture
def attacker(hostile: Hostile) -> Sandbox:
    return hostile.sandbox()


def test_no_descriptor_of_a_host_file_in_a_command_or_a_kernel(
    hostile: Hostile, attacker: Sandbox
) -> None:
    hosts = _host_devices(hostile)
    before = sum(_disk_blocks(d) for d in hostile.data_dirs)
    attacker.files.write("/tmp/attack.py", ATTACK.format(size=16 * MiB))
    code, out, err = sh(attacker, "python3 /tmp/attack.py")
    assert code == 0, err
    from_command = json.loads(out)
    from_kernel = json.loads(py(attacker, "exec(open('/tmp/attack.py').read())"))
    for report in (from_command, from_kernel):
        held = [item["where"] for item in report["held"] if item["dev"] in hosts]
        assert held == [], f"a jailed process holds host files: {held}"
        reached = _host_reached(report, hosts)
        assert reached == [], f"fallocate grew host files from the sandbox: {reached}"
    # The kernel and the command saw the jail's processes (the agent's own entries may be
    # closed to them): the attack did look at more than itself.
    grown_or_held = from_kernel["held"] + from_command["held"]
    assert grown_or_held, "the attack saw no descriptor at all"
    after = sum(_disk_blocks(d) for d in hostile.data_dirs)
    assert after - before < 4 * MiB, f"the runtime's directories grew by {after - before} bytes"


def test_a_flood_into_the_agents_output_stays_bounded(hostile: Hostile, attacker: Sandbox) -> None:
    # The agent's output goes to the runtime through a pipe, whose write end the kernel
    # inherits: what a sandbox pushes in there costs the runtime a bounded tail, nothing on disk.
    flood = (
        "import os\n"
        "target = os.readlink('/proc/1/fd/1')\n"
        "sent = 0\n"
        "for name in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        same = os.readlink(f'/proc/self/fd/{name}') == target\n"
        "    except OSError:\n"
        "        continue\n"
        "    if same and not sent:\n"
        "        for _ in range(512):\n"
        "            sent += os.write(int(name), b'x' * 65536)\n"
        "print(target, sent)\n"
    )
    before = sum(_disk_blocks(d) for d in hostile.data_dirs)
    target, sent = py(attacker, flood, timeout=120).split()
    assert int(sent) == 512 * 65536, f"the kernel holds no descriptor of {target}"
    after = sum(_disk_blocks(d) for d in hostile.data_dirs)
    assert after - before < 4 * MiB, f"the runtime's directories grew by {after - before} bytes"
    gateway = hostile.runtime.gateway
    assert gateway is not None
    # The runtime kept only the end of what the agent's output received.
    kept = gateway._outputs[attacker.sandbox_id].text()
    assert kept.endswith("x" * 1000)
    assert len(kept) <= 64 * 1024
    assert py(attacker, "print(6 * 7)").strip() == "42"
