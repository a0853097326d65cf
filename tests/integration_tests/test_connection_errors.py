"""Connection mistakes against the real runtime are named for what they are (issue 15)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from langchain_e2b import E2BBackendUnreachableError, E2BSandboxSession

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
