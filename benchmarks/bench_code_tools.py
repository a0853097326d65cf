"""What a call to an agent tool from sandbox code costs: 100 sequential calls in one cell.

A cell calls a trivial tool 100 times through ``agent_tools``; the benchmark reports calls per
second and the per-call overhead over invoking the tool directly on the host (the same tool,
``tool.invoke`` with a tool call, 100 times). Both the blocking and the async path are measured,
each as the median of ``--repeats`` cells; the time of the cell includes its setup cell and the
run_code round trip, spread over the 100 calls.

Run: .venv/bin/python benchmarks/bench_code_tools.py [--calls 100] [--repeats 5]
Target: under 10 ms of overhead per call on the local runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from langchain_core.tools import tool

from langchain_e2b import E2BCodeInterpreterTool, E2BSandboxSession
from langchain_e2b.local import LocalRuntime


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _call(code: str) -> dict[str, Any]:
    return {"type": "tool_call", "id": "bench", "name": "run_code", "args": {"code": code}}


def _direct(calls: int) -> float:
    """Seconds per direct invocation of the tool on the host, as the bridge invokes it."""
    started = time.perf_counter()
    for i in range(calls):
        add.invoke({"type": "tool_call", "id": f"c{i}", "name": "add", "args": {"a": i, "b": 1}})
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    calls = options.calls
    code = (
        f"total = 0\nfor i in range({calls}):\n    total += agent_tools.add(a=i, b=1)\nprint(total)"
    )
    expected = str(sum(range(calls)) + calls)

    runtime = LocalRuntime(pool_size=1)
    runtime.start()
    try:
        with E2BSandboxSession(**runtime.connection_options(), history=False) as session:
            runtool = E2BCodeInterpreterTool(session=session, code_tools=[add])
            empty = E2BCodeInterpreterTool(session=session)
            runtool.invoke(_call("print(agent_tools.add(a=1, b=2))"))  # warm up

            def timed(tool: E2BCodeInterpreterTool, source: str, check: str | None) -> float:
                started = time.perf_counter()
                message = tool.invoke(_call(source))
                took = time.perf_counter() - started
                if check is not None and str(message.content).strip() != check:
                    raise SystemExit(f"unexpected output: {message.content!r}")
                return took

            async def atimed(source: str) -> float:
                started = time.perf_counter()
                message = await runtool.ainvoke(_call(source))
                took = time.perf_counter() - started
                if str(message.content).strip() != expected:
                    raise SystemExit(f"unexpected output: {message.content!r}")
                return took

            direct = statistics.median(_direct(calls) for _ in range(options.repeats))
            bare = statistics.median(timed(empty, "pass", None) for _ in range(options.repeats))
            sync = statistics.median(timed(runtool, code, expected) for _ in range(options.repeats))
            async_ = statistics.median([asyncio.run(atimed(code)) for _ in range(options.repeats)])
    finally:
        runtime.stop()

    print(f"direct tool.invoke: {direct * 1000:.2f} ms per call")
    print(f"an empty run_code cell (no code tools): {bare * 1000:.1f} ms")
    for label, total in (("blocking", sync), ("async", async_)):
        per_call = total / calls
        overhead = per_call - direct
        verdict = "PASS" if overhead < 0.010 else "FAIL"
        print(
            f"{label}: {calls} calls in {total:.2f} s = {calls / total:.0f} calls/s, "
            f"{per_call * 1000:.2f} ms per call, overhead {overhead * 1000:.2f} ms per call "
            f"(target < 10 ms: {verdict})"
        )


if __name__ == "__main__":
    main()
