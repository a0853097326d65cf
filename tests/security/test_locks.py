"""A lock taken on a shared read-only file in one sandbox is not seen outside it.

The jail's system directories are overlays rather than bind mounts, so their files have inodes of
the jail's own; locks on the host's inodes would block the host and every other sandbox on that
file, and be a channel between sandboxes.
"""

from __future__ import annotations

import fcntl
import os
import time

from tests.security.conftest import Hostile, sh

# Files every jail has: the identity files, system files, the runtime's own Python.
LOCKED = ("/etc/passwd", "/etc/hostname", "/usr/bin/env", "/opt/e2b/venv/bin/python")
HOLD = r"""
import fcntl, os, sys, time
held = []
for path in sys.argv[1:]:
    if os.path.exists(path):
        f = open(path, "rb")
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(f)
open("/tmp/held", "w").write(" ".join(f.name for f in held))
time.sleep(120)
"""
TRY = r"""
import fcntl, sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print(path, "free")
    except BlockingIOError:
        print(path, "blocked")
    except FileNotFoundError:
        pass
"""


def test_a_lock_in_one_sandbox_blocks_neither_another_nor_the_host(hostile: Hostile) -> None:
    holder, other = hostile.sandbox(), hostile.sandbox()
    holder.files.write("/tmp/hold.py", HOLD)
    other.files.write("/tmp/try.py", TRY)
    handle = holder.commands.run(f"python3 /tmp/hold.py {' '.join(LOCKED)}", background=True)
    try:
        held: list[str] = []
        for _ in range(300):
            if holder.files.exists("/tmp/held"):
                held = holder.files.read("/tmp/held").split()
                break
            time.sleep(0.1)
        assert "/etc/passwd" in held
        assert "/usr/bin/env" in held
        code, out, err = sh(other, f"python3 /tmp/try.py {' '.join(held)}")
        assert code == 0, err
        assert out.strip().split("\n") == [f"{path} free" for path in held]
        # The host's own files behind the jail's /usr and /etc stay free too.
        for path in ("/usr/bin/env", "/etc/hostname"):
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        handle.kill()
