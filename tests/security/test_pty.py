"""A sandbox cannot take the host's pseudo-terminals from the other sandboxes.

Each jail has its own devpts instance with a maximum (``Limits.ptys``); without one, a sandbox
opening PTYs in a loop takes the whole pool that non-initial devpts instances share, and the
other sandboxes then get "out of pty devices".
"""

from __future__ import annotations

import os
import time

import pytest
from e2b import PtySize

from tests.security.conftest import HOSTILE_LIMITS, Hostile, sh

# Opens PTYs (the master side is enough to hold one) until it fails or has `most`, then holds
# them. Bounded so that, without a per-sandbox limit, the test does not exhaust the host's pool.
HOG = r"""
import os, sys, time
most = int(sys.argv[1])
masters, error = [], "none"
while len(masters) < most:
    try:
        masters.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
    except OSError as exc:
        error = exc.strerror
        break
open("/tmp/hogged", "w").write(f"{len(masters)} {error}")
time.sleep(120)
"""


@pytest.mark.xfail(
    os.geteuid() != 0, reason="the PTY limit needs a runtime running as root", strict=True
)
def test_a_sandbox_opening_ptys_in_a_loop_meets_its_own_limit(hostile: Hostile) -> None:
    hog, other = hostile.sandbox(), hostile.sandbox()
    hog.files.write("/tmp/hog.py", HOG)
    most = HOSTILE_LIMITS.ptys + 100
    handle = hog.commands.run(f"python3 /tmp/hog.py {most}", background=True)
    try:
        report = ""
        for _ in range(300):
            if hog.files.exists("/tmp/hogged"):
                report = hog.files.read("/tmp/hogged")
                break
            time.sleep(0.1)
        count, error = report.split(" ", 1)
        assert int(count) == HOSTILE_LIMITS.ptys, f"the sandbox opened {count} PTYs"
        assert error == "No space left on device"
        # While the hog holds all its PTYs, another sandbox still gets some: by the SDK's PTY
        # API (the agent opens it in that jail) and from its own code.
        code, out, err = sh(other, "python3 -c 'import os; os.openpty(); print(\"ok\")'")
        assert (code, out.strip()) == (0, "ok"), err
        terminal = other.pty.create(size=PtySize(rows=24, cols=80))
        other.pty.kill(terminal.pid)
    finally:
        handle.kill()
