"""Shared fixtures: one local E2B-compatible runtime per test session (or the E2B cloud)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# Read once, before any test runs: the security suite puts canary values (E2B_API_KEY among
# them) into the environment while its hostile runtime is alive, and a fixture first requested
# then must not take a canary for a cloud key.
_CLOUD_API_KEY = os.environ.get("E2B_API_KEY")


@pytest.fixture(scope="session")
def e2b_connection() -> Iterator[dict[str, Any]]:
    """Connection options for the SDK and for ``E2BSandboxSession``.

    With ``E2B_API_KEY`` set the tests run against the E2B cloud; otherwise a local runtime is
    started once for the whole test session on a free loopback port and stopped at the end.
    """
    if _CLOUD_API_KEY:
        yield {"api_key": _CLOUD_API_KEY}
        return
    from langchain_e2b.local import LocalRuntime

    runtime = LocalRuntime(pool_size=1)
    runtime.start()
    try:
        yield runtime.connection_options()
    finally:
        runtime.stop()
