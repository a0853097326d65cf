"""Start-up: a clear failure where bubblewrap cannot run, and the loud unsafe mode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2b import Sandbox

from langchain_e2b.local import IsolationUnavailableError, LocalRuntime, jail


def test_broken_bubblewrap_fails_at_start_with_cause_and_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(jail, "bwrap_binary", lambda: str(fake))
    runtime = LocalRuntime(pool_size=0)
    with pytest.raises(IsolationUnavailableError) as caught:
        runtime.start()
    message = str(caught.value)
    assert "Permission denied" in message
    assert "user namespaces" in message
    assert "E2B_API_KEY" in message


def test_unsafe_mode_warns_and_still_serves(capfd: pytest.CaptureFixture[str]) -> None:
    with LocalRuntime(pool_size=0, isolation=False) as runtime:
        assert "isolation is OFF" in capfd.readouterr().err
        sandbox = Sandbox.create(template="base", **runtime.connection_options())
        try:
            assert sandbox.commands.run("echo $HOME").stdout.strip().endswith("/home")
        finally:
            sandbox.kill()


def test_v1_create_path_answers_201() -> None:
    with LocalRuntime(pool_size=0) as runtime:
        response = httpx.post(
            f"{runtime.url}/sandboxes",
            json={"templateID": "base", "timeout": 30},
            headers={"X-API-KEY": runtime.api_key},
        )
        assert response.status_code == 201
        body = response.json()
        assert body["envdVersion"] >= "0.1.0"
        assert Sandbox.kill(body["sandboxID"], **runtime.connection_options()) is True


def test_runtime_environment_matches_connection_options() -> None:
    runtime = LocalRuntime(pool_size=0, api_key="k-123")
    env = runtime.environment()
    opts = runtime.connection_options()
    assert env == {
        "E2B_API_URL": opts["api_url"],
        "E2B_SANDBOX_URL": opts["sandbox_url"],
        "E2B_API_KEY": "k-123",
    }
