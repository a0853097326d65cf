"""Connection mistakes against the real runtime are named for what they are (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from langchain_e2b import E2BBackendUnreachableError, E2BSandboxSession
from langchain_e2b.session import EMBEDDED_ELSEWHERE, restart_notice

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("E2B_API_KEY")), reason="needs the local runtime's loopback addresses"
)


def test_missing_sandbox_url_is_reported_as_an_unreachable_address(
    e2b_connection: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API answers, but with no sandbox address the SDK sends sandbox traffic to the E2B
    # cloud's domain (no network here), so the sandbox is created and then never reached.
    monkeypatch.delenv("E2B_SANDBOX_URL", raising=False)
    options = {k: v for k, v in e2b_connection.items() if k != "sandbox_url"}
    session = E2BSandboxSession(**options)
    started = time.monotonic()
    try:
        with (
            pytest.warns(UserWarning, match="no sandbox address"),
            pytest.raises(E2BBackendUnreachableError) as caught,
        ):
            session.run_code("1")
    finally:
        session.close()
    message = str(caught.value)
    assert "did not answer" in message
    assert "E2B_SANDBOX_URL" in message
    assert "stopped again" not in message
    assert caught.value.address != e2b_connection["api_url"]
    assert time.monotonic() - started < 60


def test_errors_name_the_local_address_not_the_cloud(e2b_connection: dict[str, Any]) -> None:
    session = E2BSandboxSession(**e2b_connection, template="no-such-template")
    with pytest.raises(Exception) as caught:
        session.run_code("1")
    session.close()
    assert e2b_connection["api_url"] in str(caught.value)
    assert "E2B cloud" not in str(caught.value)


_FIRST = """
from langchain_e2b import E2BSandboxSession
session = E2BSandboxSession()
session.run_code("x = 1")
print(session.sandbox_id)
session.close(kill=False)
"""

_SECOND = """
import sys
from langchain_e2b import E2BSandboxSession
session = E2BSandboxSession.connect(sys.argv[1])
print(session.backend.dies_with_process)
print(session.run_code("1").notice)
session.close()
"""


def test_a_sandbox_of_another_process_embedded_runtime_is_named_as_the_cause() -> None:
    # Each process runs its own embedded runtime (no E2B_API_KEY): a sandbox id recorded by the
    # first is useless to the second, and the notice says why instead of "expired or killed".
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    first = subprocess.run(
        [sys.executable, "-c", _FIRST], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr[-2000:]
    sandbox_id = first.stdout.split()[-1]
    second = subprocess.run(
        [sys.executable, "-c", _SECOND, sandbox_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    dies, notice = second.stdout.strip().splitlines()[-2:]
    assert dies == "True"
    assert notice == restart_notice(EMBEDDED_ELSEWHERE)
