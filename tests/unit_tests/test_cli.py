"""The ``langchain-e2b`` command line maps options one-to-one onto ``local.serve``."""

from __future__ import annotations

from typing import Any

import pytest

import langchain_e2b.local as local
from langchain_e2b import cli


def test_local_serve_passes_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(local, "serve", lambda **kwargs: seen.update(kwargs))
    code = cli.main(
        [
            "local",
            "serve",
            "--host",
            "127.0.0.2",
            "--port",
            "8123",
            "--api-key",
            "k",
            "--allow-internet",
            "--pool",
            "0",
            "--data-dir",
            "/tmp/d",
            "--unsafe-no-isolation",
        ]
    )
    assert code == 0
    assert seen == {
        "host": "127.0.0.2",
        "port": 8123,
        "api_key": "k",
        "allow_internet": True,
        "pool": 0,
        "data_dir": "/tmp/d",
        "unsafe_no_isolation": True,
    }


def test_local_serve_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(local, "serve", lambda **kwargs: seen.update(kwargs))
    cli.main(["local", "serve"])
    assert seen["host"] == "127.0.0.1"
    assert seen["port"] == 0
    assert seen["allow_internet"] is False
    assert seen["unsafe_no_isolation"] is False


def test_missing_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
