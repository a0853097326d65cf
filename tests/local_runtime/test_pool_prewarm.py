"""A sandbox from the warm pool looks exactly like a new one, though its kernel already ran."""

from __future__ import annotations

import time

from e2b_code_interpreter import Sandbox

from langchain_e2b.local import LocalRuntime


def test_pooled_sandbox_shows_no_trace_of_its_warm_up() -> None:
    with LocalRuntime(pool_size=1) as runtime:
        assert runtime.gateway is not None
        deadline = time.monotonic() + 120
        while runtime.gateway.pooled < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime.gateway.pooled == 1, "the pool did not fill within 120 s"
        sandbox = Sandbox.create(envs={"FROM_CREATE": "yes"}, **runtime.connection_options())
        try:
            first = sandbox.run_code("1+1")
            assert first.error is None
            assert first.execution_count == 1
            assert first.text == "2"
            # IPython's input history holds only the user's cells (In[0] is always empty), and
            # the last-result variables are the user's.
            seen = sandbox.run_code("print(repr(In[1:]), repr(_), repr(__))")
            assert seen.error is None
            assert seen.logs.stdout == ["['1+1', 'print(repr(In[1:]), repr(_), repr(__))'] 2 ''\n"]
            env = sandbox.run_code("import os; print(os.environ['FROM_CREATE'], os.getenv('LANG'))")
            assert env.logs.stdout == ["yes C.UTF-8\n"]
            shell = sandbox.commands.run("echo $FROM_CREATE $LANG")
            assert shell.stdout == "yes C.UTF-8\n"
        finally:
            sandbox.kill()
