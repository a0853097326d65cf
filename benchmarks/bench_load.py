"""Load: many concurrent async sessions against one local runtime; every output checked.

Runs ``--sessions`` sessions at once (20 by default), each making ``--code`` run_code calls and
``--commands`` shell commands (50 and 20), interleaved, through ``E2BSandboxSession``'s async
API. The runtime runs in a process of its own (``langchain-e2b local serve``) so its memory can
be read: its RSS is printed when idle before the load and again after every session has closed
and its sandbox has been reaped, after each of ``--rounds`` rounds (4): a one-time rise is the
allocator's high-water mark, a rise every round would be a leak. Prints throughput and latency
percentiles; asserts nothing about time, but exits non-zero on any error, any sandbox left
running, or any output that is not exactly what the call should have produced.

Run: .venv/bin/python benchmarks/bench_load.py [--sessions 20 --code 50 --commands 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2b import SandboxQuery
from e2b_code_interpreter import AsyncSandbox

from langchain_e2b import E2BSandboxSession


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"code": [], "command": []})
    errors: list[str] = field(default_factory=list)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_runtime(api_key: str, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    # Its output goes to a file: a pipe nobody drains would stall the runtime once full.
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "langchain_e2b", "local", "serve", "--api-key", api_key, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(1200):
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the runtime did not start: {log.read_text(errors='replace')}")


def stop_runtime(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def _one_session(
    index: int, options: dict[str, str], args: argparse.Namespace, stats: Stats
) -> None:
    session = E2BSandboxSession(**options, metadata={"bench": "load"})
    try:
        first = await session.arun_code(f"me = {index}; total = 0\nprint(me)")
        if first.stdout != f"{index}\n" or first.notice or first.timed_out:
            stats.errors.append(
                f"session {index} first call in sandbox {first.sandbox_id}: got "
                f"{first.stdout!r} (error {first.error!r}, notice {first.notice!r}, "
                f"timed out {first.timed_out})"
            )
        count = args.code + args.commands
        # Commands spread evenly among the cells.
        order = [
            "command"
            if (k * args.commands) // count != ((k + 1) * args.commands) // count
            else "code"
            for k in range(count)
        ]
        total = 0
        for step, kind in enumerate(order):
            start = time.perf_counter()
            try:
                if kind == "code":
                    total += step
                    result = await session.arun_code(f"total += {step}\nprint(me, total)")
                    expected = f"{index} {total}\n"
                    got = result.stdout
                    ok = (
                        got == expected
                        and result.error is None
                        and not result.notice
                        and not result.timed_out
                    )
                else:
                    result = await session.arun_command(f"echo {index}-{step} $(( {step} * 3 ))")
                    expected = f"{index}-{step} {step * 3}\n"
                    got = result.stdout
                    ok = got == expected and result.exit_code == 0 and not result.notice
            except Exception as exc:
                stats.errors.append(f"session {index} call {step} ({kind}): {exc!r}")
                continue
            stats.latencies[kind].append(time.perf_counter() - start)
            if not ok:
                stats.errors.append(
                    f"session {index} call {step} ({kind}) in sandbox {result.sandbox_id}: "
                    f"expected {expected!r}, got {got!r} (stderr {result.stderr[:200]!r}, "
                    f"error {getattr(result, 'error', None)!r}, notice {result.notice!r}, "
                    f"timed out {result.timed_out})"
                )
    finally:
        await session.aclose()


async def _leftover(options: dict[str, str]) -> int:
    paginator = AsyncSandbox.list(query=SandboxQuery(metadata={"bench": "load"}), **options)
    count = 0
    while paginator.has_next:
        count += len(await paginator.next_items())
    return count


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    """Run the load against a runtime started for it; return what was measured."""
    api_key = "e2b_" + secrets.token_hex(20)  # the shape the E2B SDKs expect of a key
    log = Path(tempfile.mkdtemp(prefix="bench-load-")) / "runtime.log"
    proc, url = start_runtime(api_key, log)
    options = {"api_key": api_key, "api_url": url, "sandbox_url": url}
    try:
        # Warm the runtime once (imports, first jail), then let it settle before the baseline.
        warm = E2BSandboxSession(**options)
        await warm.arun_code("1")
        await warm.aclose()
        await asyncio.sleep(3)
        rss = [rss_mib(proc.pid)]
        stats = Stats()
        elapsed = 0.0
        leftover = 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            await asyncio.gather(
                *(_one_session(i, options, args, stats) for i in range(args.sessions))
            )
            elapsed += time.perf_counter() - started
            leftover += await _leftover(options)
            await asyncio.sleep(3)  # the gateway reaps killed jails in the background
            rss.append(rss_mib(proc.pid))
    finally:
        stop_runtime(proc)
    calls = sum(len(v) for v in stats.latencies.values())
    expected_calls = args.rounds * args.sessions * (args.code + args.commands)
    return {
        "stats": stats,
        "calls": calls,
        "expected_calls": expected_calls,
        "elapsed": elapsed,
        "throughput": calls / elapsed if elapsed else 0.0,
        "rss": rss,
        "leftover": leftover,
        "log": log,
        "failed": bool(stats.errors or leftover or calls != expected_calls),
    }


async def _main(args: argparse.Namespace) -> int:
    result = await run_load(args)
    stats, calls, elapsed, rss = result["stats"], result["calls"], result["elapsed"], result["rss"]
    log, leftover = result["log"], result["leftover"]
    print(
        f"rounds={args.rounds} sessions={args.sessions} run_code/session={args.code} "
        f"commands/session={args.commands}"
    )
    print(
        f"calls completed: {calls}/{result['expected_calls']} in {elapsed:.1f} s "
        f"(includes {args.rounds * args.sessions} sandbox creations)"
    )
    print(f"throughput: {result['throughput']:.1f} calls/s")
    for kind, samples in stats.latencies.items():
        if samples:
            print(
                f"{kind:8s} latency: p50 {_percentile(samples, 0.5):.1f} ms, "
                f"p99 {_percentile(samples, 0.99):.1f} ms, "
                f"mean {statistics.mean(samples) * 1000:.1f} ms (n={len(samples)})"
            )
    after = ", ".join(f"{value:.1f}" for value in rss[1:])
    print(
        f"runtime RSS: {rss[0]:.1f} MiB idle before; after each round, all sessions closed: "
        f"{after} MiB"
    )
    print(f"sandboxes left running: {leftover}")
    print(f"errors: {len(stats.errors)}")
    for error in stats.errors[:20]:
        print("  " + error)
    runtime_log = log.read_text(errors="replace").strip().splitlines()
    print(f"runtime log: {len(runtime_log)} lines ({log}, kept only if something failed)")
    for line in runtime_log[-20:]:
        print("  " + line)
    if not result["failed"]:
        shutil.rmtree(log.parent, ignore_errors=True)
    return 1 if result["failed"] else 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--code", type=int, default=50, help="run_code calls per session")
    parser.add_argument("--commands", type=int, default=20, help="commands per session")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="repeat the whole load; memory that keeps growing round after round is a leak",
    )
    return parser


def main() -> None:
    sys.exit(asyncio.run(_main(parser().parse_args())))


if __name__ == "__main__":
    main()
