"""Timing of the code interpreter through the real SDK: live output, timeouts, stuck code."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2b import TimeoutException
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


def _sdk_deadline(timeout: float) -> float:
    """Seconds after which the installed SDK gives up on ``run_code(timeout=timeout)``.

    ``run_code`` passes ``httpx.Timeout(timeout, connect=...)``; over pyqwest's httpx adapter
    (e2b releases that ship it) that becomes one whole-request deadline of read + write time,
    twice ``timeout``. Over httpx's own transport it is ``timeout`` between reads.
    """
    try:
        from pyqwest.httpx._transport import convert_timeout
    except ImportError:
        return timeout
    deadline = convert_timeout({"timeout": httpx.Timeout(timeout, connect=5.0).as_dict()})
    return timeout if deadline is None else float(deadline)


SDK_DOUBLES_TIMEOUT = _sdk_deadline(2.0) > 2.0


def _run_past_timeout(sandbox: Sandbox, timeout: float) -> tuple[float, float, list[float]]:
    """Run a printing endless loop with ``timeout``: (seconds taken, end time, stdout times)."""
    arrivals: list[float] = []
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        sandbox.run_code(
            "import time\nticks = 0\nwhile True:\n"
            "    ticks += 1\n    last_tick = time.time()\n    print(ticks)\n    time.sleep(0.1)",
            timeout=timeout,
            on_stdout=lambda _m: arrivals.append(time.monotonic()),
        )
    return time.monotonic() - started, time.time(), arrivals


def test_timeout_ends_the_call_and_the_code(sandbox: Sandbox) -> None:
    timeout = 2.0
    deadline = _sdk_deadline(timeout)
    taken, ended_at, arrivals = _run_past_timeout(sandbox, timeout)
    # The runtime adds no period of its own to the SDK's deadline...
    assert deadline <= taken < deadline * 1.5, (taken, deadline)
    assert arrivals, "the loop printed nothing"
    # ...and the code stops as soon as the SDK gives up: it does not run (or print) on.
    after = sandbox.run_code("last_tick, ticks")
    assert after.error is None
    last_tick, ticks = (float(x) for x in (after.text or "").strip("()").split(","))
    assert last_tick < ended_at + 0.5
    assert ticks <= deadline * 10 + 5
    time.sleep(0.5)
    assert sandbox.run_code("ticks").text == str(int(ticks))


@pytest.mark.xfail(
    SDK_DOUBLES_TIMEOUT,
    strict=True,
    reason="the SDK's run_code passes httpx.Timeout(timeout), and pyqwest's httpx adapter makes "
    "that one deadline of read + write time: the plain SDK gives up after twice the timeout "
    "(client side; the same against the E2B cloud)",
)
def test_plain_sdk_timeout_is_wall_time(sandbox: Sandbox) -> None:
    taken, _, _ = _run_past_timeout(sandbox, 2.0)
    assert taken < 2.0 * 1.5


IGNORES_INTERRUPT = {
    "catches": (
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
        "    except KeyboardInterrupt:\n        pass"
    ),
    "blocks_sigint": (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "while True:\n    time.sleep(0.1)"
    ),
}


@pytest.mark.parametrize("code", IGNORES_INTERRUPT.values(), ids=IGNORES_INTERRUPT.keys())
def test_code_that_ignores_the_interrupt_gets_a_restarted_kernel(
    sandbox: Sandbox, code: str
) -> None:
    context = sandbox.create_code_context()
    try:
        sandbox.run_code("state = 'set before'", context=context)
        with pytest.raises(TimeoutException):
            sandbox.run_code(code, context=context, timeout=1)
        started = time.monotonic()
        after = sandbox.run_code("globals().get('state')", context=context)
        # The kernel is restarted after a few seconds' grace, not half a minute later...
        assert time.monotonic() - started < 15
        assert after.error is None
        # ...and the next answer says so, in words, before anything else.
        assert after.text is None
        (notice,) = after.logs.stderr
        assert "did not stop" in notice
        assert "kernel was restarted" in notice
        assert "lost" in notice
        # Told once: the cell after that is an ordinary one.
        again = sandbox.run_code("1 + 1", context=context)
        assert again.text == "2"
        assert again.logs.stderr == []
    finally:
        sandbox.remove_code_context(context)


def test_restart_code_context_stops_stuck_code(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context()
    try:
        sandbox.run_code("state = 1", context=context)
        outcome: list[Any] = []

        def stuck() -> None:
            try:
                outcome.append(
                    sandbox.run_code(IGNORES_INTERRUPT["catches"], context=context, timeout=60)
                )
            except Exception as exc:
                outcome.append(exc)

        runner = threading.Thread(target=stuck)
        runner.start()
        time.sleep(1.0)
        started = time.monotonic()
        sandbox.restart_code_context(context)
        runner.join(timeout=30)
        assert not runner.is_alive()
        assert time.monotonic() - started < 15
        (ended,) = outcome
        assert ended.error is not None
        assert ended.error.name == "ContextRestarting"
        assert "lost" in ended.error.value
        after = sandbox.run_code("'state' in globals()", context=context)
        assert after.text == "False"
        assert after.logs.stderr == []
    finally:
        sandbox.remove_code_context(context)


def test_restart_default_context(sandbox: Sandbox) -> None:
    sandbox.run_code("default_state = 1")
    (default,) = [c for c in sandbox.list_code_contexts() if c.language == "python"][:1]
    sandbox.restart_code_context(default)
    assert sandbox.run_code("'default_state' in globals()").text == "False"
