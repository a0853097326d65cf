"""Per-call overhead of ``E2BCodeInterpreterTool.invoke`` over a direct ``sandbox.run_code``.

Both run ``1+1`` on the same sandbox, interleaved, 200 times each; the ratio of the medians is
printed (target: at most 1.05). Uses the E2B cloud when ``E2B_API_KEY`` is set, else a local
runtime started for the run.

    .venv/bin/python benchmarks/bench_tool_overhead.py [--calls 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

from langchain_e2b import E2BCodeInterpreterTool, E2BSandboxSession

TARGET = 1.05


@contextlib.contextmanager
def _connection() -> Iterator[dict[str, Any]]:
    if os.environ.get("E2B_API_KEY"):
        yield {"api_key": os.environ["E2B_API_KEY"]}
        return
    from langchain_e2b.local import LocalRuntime

    runtime = LocalRuntime(pool_size=0).start()
    try:
        yield runtime.connection_options()
    finally:
        runtime.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    with _connection() as connection, E2BSandboxSession(**connection) as session:
        tool = E2BCodeInterpreterTool(session=session)
        sandbox = session.ensure_sandbox()
        for _ in range(20):  # warm up the kernel and both code paths
            sandbox.run_code("1+1")
            tool.invoke({"code": "1+1"})
        direct: list[float] = []
        via_tool: list[float] = []
        for _ in range(args.calls):
            start = time.perf_counter()
            sandbox.run_code("1+1")
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            tool.invoke({"code": "1+1"})
            via_tool.append(time.perf_counter() - start)

    d, t = statistics.median(direct), statistics.median(via_tool)
    ratio = t / d
    print(f"sandbox.run_code('1+1')              median {d * 1000:.2f} ms ({args.calls} calls)")
    print(f"E2BCodeInterpreterTool.invoke('1+1') median {t * 1000:.2f} ms ({args.calls} calls)")
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"overhead ratio {ratio:.3f} (target <= {TARGET:.2f}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
