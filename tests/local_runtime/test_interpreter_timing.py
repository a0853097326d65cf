"""Timing of the code interpreter through the real SDK: live output, timeouts, stuck code."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2b_code_interpreter import OutputMessage, Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def sandbox(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sbx = Sandbox.create(**e2b_connection)
    try:
        yield sbx
    finally:
        sbx.kill()


def test_live_output_follows_the_cells_prints(sandbox: Sandbox) -> None:
    # No flush: the kernel's own stream buffering decides when text leaves the kernel.
    prints = 15
    arrivals: list[tuple[float, str]] = []

    def on_stdout(message: OutputMessage) -> None:
        arrivals.append((time.time(), message.line))

    sandbox.run_code(
        f"import time\nfor i in range({prints}):\n    print(time.time())\n    time.sleep(0.2)",
        on_stdout=on_stdout,
    )
    assert "".join(line for _, line in arrivals).count("\n") == prints
    # Each print arrives on its own (batches of two would halve the count)...
    assert len(arrivals) >= prints * 0.75, arrivals
    # ...at the cell's 0.2 s cadence, not every 0.4 s...
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    assert statistics.median(gaps) < 0.3, gaps
    # ...and soon after it was printed (same clock: the sandbox runs on this machine).
    first_printed = float(arrivals[0][1].split()[0])
    assert arrivals[0][0] - first_printed < 0.5


def test_syntax_error_names_the_cells_line(sandbox: Sandbox) -> None:
    execution = sandbox.run_code("x = 1\ny = (")
    assert execution.error is not None
    assert execution.error.name == "SyntaxError"
    assert execution.error.value == "incomplete input (line 2)"
    lines = execution.error.traceback.strip().splitlines()
    assert lines[-1] == "SyntaxError: incomplete input (line 2)"
    assert "y = (" in execution.error.traceback
    assert ".py" not in execution.error.traceback

    indented = sandbox.run_code("if True:\nprint(1)")
    assert indented.error is not None
    assert indented.error.name == "IndentationError"
    assert indented.error.value.endswith("(line 2)")
    assert ".py" not in indented.error.value


def test_syntax_errors_of_other_files_keep_their_name(sandbox: Sandbox) -> None:
    execution = sandbox.run_code("compile('x = (', 'mine.py', 'exec')")
    assert execution.error is not None
    assert execution.error.value == "'(' was never closed (mine.py, line 1)"
