"""The code interpreter through the real ``e2b_code_interpreter`` SDK and the local runtime."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from e2b import NotFoundException, SandboxException, TimeoutException
from e2b_code_interpreter import AsyncSandbox, OutputMessage, Result, Sandbox
from e2b_code_interpreter.charts import ChartType

pytestmark = pytest.mark.slow

local_only = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="checks this runtime's own messages"
)


@pytest.fixture(scope="module")
def sandbox(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sbx = Sandbox.create(envs={"SBX_GLOBAL": "from-create"}, **e2b_connection)
    try:
        yield sbx
    finally:
        sbx.kill()


@pytest.fixture(scope="module")
async def async_sandbox(e2b_connection: dict[str, Any]) -> AsyncIterator[AsyncSandbox]:
    sbx = await AsyncSandbox.create(**e2b_connection)
    try:
        yield sbx
    finally:
        await sbx.kill()


def test_run_code_result_and_state(sandbox: Sandbox) -> None:
    first = sandbox.run_code("value = 20\nvalue + 1")
    assert first.text == "21"
    assert first.error is None
    second = sandbox.run_code("value * 2")
    assert second.text == "40"
    assert first.execution_count is not None
    assert second.execution_count == first.execution_count + 1


def test_stdout_stderr_callbacks(sandbox: Sandbox) -> None:
    out: list[OutputMessage] = []
    err: list[OutputMessage] = []
    execution = sandbox.run_code(
        "import sys\nprint('to out')\nprint('to err', file=sys.stderr)",
        on_stdout=out.append,
        on_stderr=err.append,
    )
    assert execution.logs.stdout == ["to out\n"]
    assert execution.logs.stderr == ["to err\n"]
    assert [m.line for m in out] == ["to out\n"]
    assert [m.line for m in err] == ["to err\n"]
    assert err[0].error
    assert not out[0].error


def test_error_is_a_result_not_an_exception(sandbox: Sandbox) -> None:
    seen: list[Any] = []
    execution = sandbox.run_code("{}['missing']", on_error=seen.append)
    assert execution.error is not None
    assert execution.error.name == "KeyError"
    assert execution.error.value == "'missing'"
    assert "KeyError" in execution.error.traceback
    assert seen == [execution.error]


def test_matplotlib_png_and_chart(sandbox: Sandbox) -> None:
    results: list[Result] = []
    execution = sandbox.run_code(
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\nax.plot([0, 1, 2], [0, 1, 4], label='y')\n"
        "ax.set_title('Growth')\nax.set_xlabel('time (s)')\nplt.show()",
        on_result=results.append,
    )
    assert execution.error is None
    (figure,) = [r for r in execution.results if r.png]
    assert base64.b64decode(figure.png or "").startswith(b"\x89PNG")
    assert figure.chart is not None
    assert figure.chart.type == ChartType.LINE
    assert figure.chart.title == "Growth"
    assert "png" in figure.formats()
    assert figure in results


def test_dataframe_data(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import pandas as pd\npd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [3.5, 19.0]})"
    )
    (result,) = execution.results
    assert result.is_main_result
    assert result.data == {"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]}
    assert result.html is not None
    assert "<table" in result.html


def test_envs_per_run_and_from_create(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import os\n(os.environ.get('RUN_ONLY'), os.environ.get('SBX_GLOBAL'))",
        envs={"RUN_ONLY": "r"},
    )
    assert execution.text == "('r', 'from-create')"
    after = sandbox.run_code("import os\nos.environ.get('RUN_ONLY')")
    assert after.text is None
    assert after.error is None


def test_timeout_interrupts_and_state_survives(sandbox: Sandbox) -> None:
    sandbox.run_code("survivor = 'kept'")
    with pytest.raises(TimeoutException):
        sandbox.run_code("while True:\n    pass", timeout=1)
    execution = sandbox.run_code("import sys\n(survivor, sys.last_type.__name__)")
    assert execution.text == "('kept', 'KeyboardInterrupt')"


def test_contexts(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context(cwd="/tmp")
    assert context.language == "python"
    assert context.cwd == "/tmp"
    assert sandbox.run_code("import os\nos.getcwd()", context=context).text == "/tmp"
    sandbox.run_code("ctx_var = 5", context=context)
    assert sandbox.run_code("'ctx_var' in globals()").text == "False"
    assert context.id in [c.id for c in sandbox.list_code_contexts()]

    sandbox.restart_code_context(context)
    lost = sandbox.run_code("ctx_var", context=context)
    assert lost.error is not None
    assert lost.error.name == "NameError"

    sandbox.remove_code_context(context)
    assert context.id not in [c.id for c in sandbox.list_code_contexts()]
    with pytest.raises(NotFoundException):
        sandbox.run_code("1", context=context)


@local_only
def test_unsupported_language_message(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxException) as info:
        sandbox.run_code("1", language="cobol")
    assert "python" in str(info.value)
    assert "cobol" in str(info.value)


@local_only
def test_kernel_death_is_reported_and_recovered(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context()
    sandbox.run_code("before = 1", context=context)
    died = sandbox.run_code("import os\nos._exit(1)", context=context)
    assert died.error is not None
    assert died.error.name == "KernelDied"
    assert "lost" in died.error.value
    after = sandbox.run_code("'before' in globals(), 6 * 7", context=context)
    assert after.text == "(False, 42)"
    sandbox.remove_code_context(context)


async def test_async_run_code_with_async_callbacks(async_sandbox: AsyncSandbox) -> None:
    lines: list[str] = []

    async def on_stdout(message: OutputMessage) -> None:
        lines.append(message.line)

    execution = await async_sandbox.run_code(
        "for i in range(3):\n    print(i)\n'done'", on_stdout=on_stdout
    )
    assert execution.text == "done"
    assert "".join(lines) == "0\n1\n2\n"


async def test_async_timeout_then_state(async_sandbox: AsyncSandbox) -> None:
    await async_sandbox.run_code("counter = 0")
    with pytest.raises(TimeoutException):
        await async_sandbox.run_code("import time\nwhile True:\n    counter += 1", timeout=1)
    execution = await async_sandbox.run_code("counter > 0")
    assert execution.text == "True"


async def test_async_contexts(async_sandbox: AsyncSandbox) -> None:
    context = await async_sandbox.create_code_context()
    await async_sandbox.run_code("mine = 'a'", context=context)
    execution = await async_sandbox.run_code("mine", context=context)
    assert execution.text == "a"
    await async_sandbox.remove_code_context(context.id)
    with pytest.raises(NotFoundException):
        await async_sandbox.run_code("1", context=context)
