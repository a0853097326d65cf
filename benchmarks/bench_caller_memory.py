"""How much the caller's memory grows while a sandbox prints a lot: a command and a cell.

Whatever a sandbox prints, the session keeps a bounded head and tail of it while it streams, so
the process running the agent should not grow with the output. The runtime runs in this process;
each measurement runs in a child process (the caller), which samples its own resident memory
every 5 ms and reports the peak growth over its level before the call.

Run: .venv/bin/python benchmarks/bench_caller_memory.py [--megabytes 1000]
Target: under 64 MB of growth for 1 GB printed by a command and by a cell.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from langchain_e2b.local import LocalRuntime

CHILD = r"""
import json, os, sys, threading, time
from langchain_e2b import E2BSandboxSession

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

kind, size = sys.argv[1], int(sys.argv[2])
options = json.loads(os.environ["BENCH_CONNECTION"])
with E2BSandboxSession(**options, timeout=1800, history=False) as session:
    session.run_code("print('warm')")
    session.run_command("echo warm")
    base = rss_mb()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    if kind == "command":
        result = session.run_command(f"yes | head -c {size}", timeout=1800)
    else:
        code = (
            "import sys\n"
            "chunk = 'y\\n' * 500_000\n"
            f"for _ in range({size} // 1_000_000):\n"
            "    sys.stdout.write(chunk)\n"
        )
        result = session.run_code(code, timeout=1800)
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], rss_mb())
    print(json.dumps({
        "growth_mb": peak[0] - base,
        "seconds": seconds,
        "kept_chars": len(result.stdout),
        "omitted_chars": result.output_omitted,
        "error": (getattr(result, "error", None) or {}).get("value"),
    }))
"""


def measure(kind: str, size: int, connection: dict[str, str]) -> dict[str, float]:
    """Run one caller in a child process and return what it reports."""
    env = {**os.environ, "BENCH_CONNECTION": json.dumps(connection)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(size)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Print the caller's peak memory growth for each kind of output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1000, help="output size (default 1000)")
    args = parser.parse_args()
    size = args.megabytes * 1_000_000
    with LocalRuntime(pool_size=0) as runtime:
        connection = runtime.connection_options()
        print(f"caller memory while a sandbox prints {args.megabytes} MB (target: < 64 MB)")
        for kind in ("command", "cell"):
            started = time.monotonic()
            report = measure(kind, size, connection)
            print(
                f"  {kind:8} peak RSS growth {report['growth_mb']:6.1f} MB   "
                f"call {report['seconds']:6.1f} s   kept {report['kept_chars']} chars, "
                f"{report['omitted_chars']} not kept   (total {time.monotonic() - started:.0f} s)"
            )
            if report["error"]:
                printed = (report["kept_chars"] + report["omitted_chars"]) / 1e6
                print(f"           the cell stopped after {printed:.0f} MB: {report['error']}")


if __name__ == "__main__":
    main()
