"""Local runtime benchmarks: ratios measured in one run, printed, never asserted.

Contenders are interleaved (one call of each in turn, the order rotating every round), so a
change in the machine's load hits them alike. ``benchmarks/run_all.py`` imports the functions
here for the full report.

Run: .venv/bin/python benchmarks/bench_runtime.py [--calls 200 --rounds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from e2b import Sandbox
from e2b_code_interpreter import Sandbox as CodeSandbox
from jupyter_client.manager import start_new_kernel

from langchain_e2b.local import LocalRuntime, jail, reservations


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile_ms(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def interleaved(
    contenders: dict[str, Callable[[], Any]],
    rounds: int,
    warmup: int = 5,
    untimed: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, list[float]]:
    """Time one call of each contender per round, rotating the order; return seconds per call.

    ``untimed[name]``, when given, runs before each call of ``name`` outside the timing.
    """
    names = list(contenders)
    before = untimed or {}

    def call(name: str) -> float:
        if name in before:
            before[name]()
        start = time.perf_counter()
        contenders[name]()
        return time.perf_counter() - start

    for _ in range(warmup):
        for name in names:
            call(name)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(call(name))
    return samples


@contextlib.contextmanager
def bare_kernel() -> Iterator[Callable[[str], None]]:
    """The floor: an IPython kernel driven by ``jupyter_client`` directly (no jail, no HTTP)."""
    manager, client = start_new_kernel(kernel_name="python3")

    def execute(code: str) -> None:
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda _msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the bare kernel failed on {code!r}: {reply['content']}")

    try:
        yield execute
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def bare_kernel_cold_start() -> float:
    """Seconds from nothing to the first ``1+1`` result of a fresh bare kernel."""
    start = time.perf_counter()
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        client.execute_interactive("1+1", timeout=60, output_hook=lambda _msg: None)
        return time.perf_counter() - start
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@contextlib.contextmanager
def bare_bwrap() -> Iterator[Callable[[], None]]:
    """Run ``true`` in the runtime's jail (same bubblewrap arguments), spawned directly."""
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
    cmd = [*cmd[: cmd.index(layout.python)], "/bin/bash", "-l", "-c", "true"]
    uids = reservations.UidPool(reservations.state_dir()) if os.geteuid() == 0 else None
    uid = uids.reserve("bench-bare") if uids is not None else None

    def direct() -> None:
        subprocess.run(
            cmd,
            check=True,
            cwd="/",
            preexec_fn=lambda: jail.enter_jail_user(uid, staged, limits),
        )

    try:
        yield direct
    finally:
        if uids is not None:
            uids.close()


def wait_pool(runtime: LocalRuntime, size: int) -> None:
    assert runtime.gateway is not None
    deadline = time.monotonic() + 120
    while runtime.gateway.pooled < size and time.monotonic() < deadline:
        time.sleep(0.05)


def create_to_first_result(options: dict[str, str]) -> float:
    """Seconds from ``Sandbox.create()`` to the first ``run_code`` result (then killed)."""
    start = time.perf_counter()
    sandbox = CodeSandbox.create(**options)
    sandbox.run_code("1+1")
    elapsed = time.perf_counter() - start
    sandbox.kill()
    return elapsed


def measure_create(runtime: LocalRuntime, rounds: int) -> tuple[list[float], list[float]]:
    """Create-to-first-result with ``runtime``'s warm pool, and with a runtime without one."""
    warm = []
    for _ in range(rounds):
        wait_pool(runtime, runtime.pool_size)
        warm.append(create_to_first_result(runtime.connection_options()))
    with LocalRuntime(pool_size=0) as cold_runtime:
        cold = [
            create_to_first_result(cold_runtime.connection_options())
            for _ in range(max(3, rounds // 3))
        ]
    return warm, cold


def process_tree(pid: int) -> list[int]:
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


def memory_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def resident_pages(pid: int) -> set[int]:
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


def sandboxes_memory(pids: list[int]) -> dict[str, float]:
    """Memory of the process trees rooted at ``pids``, in MB.

    ``unique`` counts each physical page once across all of them (what a memory cgroup would
    charge; 0 when not root, as pagemap then hides frame numbers); ``rss`` adds up each
    process's RSS, counting shared pages again for every process mapping them.
    """
    tree = [p for pid in pids for p in process_tree(pid)]
    frames: set[int] = set()
    for p in tree:
        frames |= resident_pages(p)
    page_mb = os.sysconf("SC_PAGE_SIZE") / 1024**2
    return {
        "processes": len(tree),
        "unique": len(frames) * page_mb if os.geteuid() == 0 else 0.0,
        "rss": sum(memory_kb(p, "Rss") for p in tree) / 1024,
        "pss": sum(memory_kb(p, "Pss") for p in tree) / 1024,
    }


def sandbox_pid(runtime: LocalRuntime, sandbox_id: str) -> int:
    assert runtime.gateway is not None
    return runtime.gateway.sandboxes[sandbox_id].proc.pid


def idle_sandbox_memory(runtime: LocalRuntime) -> dict[str, float]:
    sandbox = CodeSandbox.create(**runtime.connection_options())
    try:
        sandbox.run_code("1+1")
        time.sleep(2)
        return sandboxes_memory([sandbox_pid(runtime, sandbox.sandbox_id)])
    finally:
        sandbox.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with LocalRuntime(pool_size=2) as runtime:
        wait_pool(runtime, 2)

        sandbox = CodeSandbox.create(**runtime.connection_options())
        try:
            with bare_kernel() as execute:
                step = interleaved(
                    {"runtime": lambda: sandbox.run_code("1+1"), "bare": lambda: execute("1+1")},
                    args.calls,
                )
        finally:
            sandbox.kill()
        b, o = median_ms(step["bare"]), median_ms(step["runtime"])
        print(
            f"run_code('1+1') median over {args.calls}: runtime {o:.2f} ms, "
            f"bare jupyter_client {b:.2f} ms"
        )
        print(f"  ratio runtime/bare = {o / b:.2f}x (target <= 1.3x)")

        warm, cold = measure_create(runtime, args.rounds)
        print(
            f"create -> first run_code, warm pool ({runtime.pool_size}): median "
            f"{median_ms(warm):.0f} ms over {args.rounds} (target <= 10 ms); "
            f"cold (jail + kernel start): median {median_ms(cold):.0f} ms"
        )

        calls = min(args.calls, 50)
        shell = Sandbox.create(template="base", **runtime.connection_options())
        try:
            with bare_bwrap() as direct:
                cmd = interleaved(
                    {"runtime": lambda: shell.commands.run("true"), "bwrap": direct}, calls
                )
        finally:
            shell.kill()
        b, o = median_ms(cmd["bwrap"]), median_ms(cmd["runtime"])
        print(
            f"commands.run('true') median over {calls}: runtime {o:.2f} ms, "
            f"bwrap directly {b:.2f} ms"
        )
        print(f"  ratio runtime/bwrap = {o / b:.2f}x (target <= 3x)")

        memory = idle_sandbox_memory(runtime)
        print(
            f"idle code-interpreter-v1 sandbox ({memory['processes']} processes): resident "
            f"{memory['unique']:.0f} MB (each physical page once; target <= 60 MB), sum of RSS "
            f"{memory['rss']:.0f} MB (counts the pages its processes share twice), "
            f"PSS {memory['pss']:.0f} MB"
        )


if __name__ == "__main__":
    main()
