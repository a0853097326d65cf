"""Local runtime benchmarks: ratios measured in one run, printed, never asserted.

Run: .venv/bin/python benchmarks/bench_runtime.py [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from e2b import Sandbox
from e2b_code_interpreter import Sandbox as CodeSandbox
from jupyter_client.manager import start_new_kernel

from langchain_e2b.local import LocalRuntime, jail, reservations


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_run_code(runtime: LocalRuntime, calls: int) -> None:
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        for _ in range(10):
            client.execute_interactive("1+1", timeout=30, output_hook=lambda _msg: None)
        bare = _timed(
            lambda: client.execute_interactive("1+1", timeout=30, output_hook=lambda _m: None),
            calls,
        )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    sandbox = CodeSandbox.create(**runtime.connection_options())
    try:
        for _ in range(10):
            sandbox.run_code("1+1")
        ours = _timed(lambda: sandbox.run_code("1+1"), calls)
    finally:
        sandbox.kill()
    b, o = _median_ms(bare), _median_ms(ours)
    print(
        f"run_code('1+1') median over {calls}: runtime {o:.2f} ms, bare jupyter_client {b:.2f} ms"
    )
    print(f"  ratio runtime/bare = {o / b:.2f}x (target <= 1.5x)")


def _wait_pool(runtime: LocalRuntime, size: int) -> None:
    assert runtime.gateway is not None
    deadline = time.monotonic() + 120
    while runtime.gateway.pooled < size and time.monotonic() < deadline:
        time.sleep(0.05)


def bench_create(runtime: LocalRuntime, rounds: int) -> None:
    opts = runtime.connection_options()
    warm = []
    for _ in range(rounds):
        _wait_pool(runtime, runtime.pool_size)
        start = time.perf_counter()
        sandbox = CodeSandbox.create(**opts)
        sandbox.run_code("1+1")
        warm.append(time.perf_counter() - start)
        sandbox.kill()
    with LocalRuntime(pool_size=0) as cold_runtime:
        cold = []
        for _ in range(max(3, rounds // 3)):
            start = time.perf_counter()
            sandbox = CodeSandbox.create(**cold_runtime.connection_options())
            sandbox.run_code("1+1")
            cold.append(time.perf_counter() - start)
            sandbox.kill()
    print(
        f"create -> first run_code, warm pool ({runtime.pool_size}): median "
        f"{_median_ms(warm):.0f} ms over {rounds} (target <= 100 ms); "
        f"cold (jail + kernel start): median {_median_ms(cold):.0f} ms"
    )


def bench_commands(runtime: LocalRuntime, calls: int) -> None:
    data = Path(tempfile.mkdtemp())
    data.chmod(0o711)
    layout = jail.prepare_python(data)
    staged, binds = jail.stage_binds(layout, jail.write_identity_files(data), data / "stage")
    limits = jail.Limits()
    cmd = jail.bwrap_command(
        jail.check_isolation(),
        layout=layout,
        binds=binds,
        limits=limits,
        network=False,
        agent_config="{}",
    )
    cmd = [*cmd[:cmd.index(layout.python)], "/bin/bash", "-l", "-c", "true"]
    uids = reservations.UidPool(reservations.state_dir()) if os.geteuid() == 0 else None
    uid = uids.reserve("bench-bare") if uids is not None else None

    def direct() -> None:
        subprocess.run(
            cmd,
            check=True,
            cwd="/",
            preexec_fn=lambda: jail.enter_jail_user(uid, staged, limits),
        )

    bare = _timed(direct, calls)
    if uids is not None:
        uids.close()
    sandbox = Sandbox.create(template="base", **runtime.connection_options())
    try:
        ours = _timed(lambda: sandbox.commands.run("true"), calls)
    finally:
        sandbox.kill()
    b, o = _median_ms(bare), _median_ms(ours)
    print(
        f"commands.run('true') median over {calls}: runtime {o:.2f} ms, bwrap directly {b:.2f} ms"
    )
    print(f"  ratio runtime/bwrap = {o / b:.2f}x (target <= 3x)")


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def _memory_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _resident_pages(pid: int) -> set[int]:
    """Physical page frames mapped and resident in ``pid`` (needs root for /proc/pid/pagemap)."""
    frames: set[int] = set()
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in maps:
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                pagemap.seek(start // page * 8)
                data = pagemap.read((end - start) // page * 8)
                for (entry,) in struct.iter_unpack("<Q", data):
                    if entry >> 63 & 1:  # present in RAM
                        frames.add(entry & ((1 << 55) - 1))
    except OSError:
        pass
    return frames


def bench_memory(runtime: LocalRuntime) -> None:
    sandbox = CodeSandbox.create(**runtime.connection_options())
    try:
        sandbox.run_code("1+1")
        time.sleep(2)
        assert runtime.gateway is not None
        pid = runtime.gateway.sandboxes[sandbox.sandbox_id].proc.pid
        pids = _tree(pid)
        rss = sum(_memory_kb(p, "Rss") for p in pids) / 1024
        pss = sum(_memory_kb(p, "Pss") for p in pids) / 1024
        frames: set[int] = set()
        for p in pids:
            frames |= _resident_pages(p)
        unique = len(frames) * os.sysconf("SC_PAGE_SIZE") / 1024**2 if os.geteuid() == 0 else 0
        print(
            f"idle code-interpreter-v1 sandbox ({len(pids)} processes): resident {unique:.0f} MB "
            f"(each physical page once; target <= 80 MB), sum of RSS {rss:.0f} MB (counts the "
            f"pages its processes share twice), PSS {pss:.0f} MB"
        )
    finally:
        sandbox.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with LocalRuntime(pool_size=2) as runtime:
        _wait_pool(runtime, 2)
        bench_run_code(runtime, args.calls)
        bench_create(runtime, args.rounds)
        bench_commands(runtime, min(args.calls, 50))
        bench_memory(runtime)


if __name__ == "__main__":
    main()
