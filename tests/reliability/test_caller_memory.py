"""The caller's own memory stays bounded however much a sandbox prints (issue 8, item 4).

The caller runs in a child process, so the runtime serving the test (in this process) does not
count: the child samples its own resident memory while a command prints 200 MB (through the
blocking and the async methods), then while a cell prints 30 MB (the local runtime's kernel dies
past about 50 MB printed at full speed, a runtime problem of its own). Before the session kept a
bounded head and tail, the child grew by about twice the output (384 MB for 200 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from langchain_e2b.local import LocalRuntime

SIZES = {"command": 200_000_000, "async command": 200_000_000, "cell": 30_000_000}
# Generous, yet below what keeping the whole output costs (about twice its size).
BOUNDS_MB = {"command": 100, "async command": 100, "cell": 30}

CHILD = r"""
import asyncio, json, os, sys, threading, time
from langchain_e2b import E2BSandboxSession

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

sizes = json.loads(sys.argv[1])
report = {}
with E2BSandboxSession(**json.loads(os.environ["E2B_TEST_CONNECTION"]), timeout=600) as session:
    session.run_code("print('warm')")
    session.run_command("echo warm")
    for kind, size in sizes.items():
        base = rss_mb()
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb())
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if kind == "command":
            result = session.run_command(f"yes | head -c {size}", timeout=600)
        elif kind == "async command":
            result = asyncio.run(session.arun_command(f"yes | head -c {size}", timeout=600))
        else:
            result = session.run_code(
                "import sys\nchunk = 'y\\n' * 500_000\n"
                f"for _ in range({size} // 1_000_000):\n    sys.stdout.write(chunk)",
                timeout=600,
            )
        done.set()
        sampler.join()
        report[kind] = {
            "growth_mb": max(peak[0], rss_mb()) - base,
            "kept": len(result.stdout),
            "omitted": result.output_omitted,
            "tail": result.stdout[-20:],
            "history_stdout": len(session.history[-1].stdout) if kind == "cell" else 0,
        }
print(json.dumps(report))
"""


@pytest.mark.slow
def test_long_output_grows_the_caller_by_a_bounded_amount(runtime: LocalRuntime) -> None:
    env = {**os.environ, "E2B_TEST_CONNECTION": json.dumps(runtime.connection_options())}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(SIZES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, size in SIZES.items():
        measured = report[kind]
        assert measured["growth_mb"] < BOUNDS_MB[kind], (kind, measured)
        # The model still gets the head and the tail, and is told that the middle is missing.
        assert measured["kept"] < 250_000
        assert measured["omitted"] > size - 250_000
        assert measured["tail"] == "y\n" * 10
    assert report["cell"]["history_stdout"] < 250_000
