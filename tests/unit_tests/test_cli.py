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
            "--api-key-file",
            "/tmp/key",
            "--memory",
            "512M",
            "--cpus",
            "0.5",
            "--processes",
            "100",
            "--disk",
            "1.5GiB",
        ]
    )
    assert code == 0
    assert seen == {
        "host": "127.0.0.2",
        "port": 8123,
        "api_key": "k",
        "api_key_file": "/tmp/key",
        "allow_internet": True,
        "pool": 0,
        "data_dir": "/tmp/d",
        "unsafe_no_isolation": True,
        "memory": 512 * 1024**2,
        "cpus": 0.5,
        "processes": 100,
        "disk": 1536 * 1024**2,
    }


def test_local_serve_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(local, "serve", lambda **kwargs: seen.update(kwargs))
    cli.main(["local", "serve"])
    assert seen["host"] == "127.0.0.1"
    assert seen["port"] == 0
    assert seen["allow_internet"] is False
    assert seen["unsafe_no_isolation"] is False
    assert seen["api_key"] is None
    assert [seen[name] for name in ("memory", "cpus", "processes", "disk")] == [None] * 4


def test_missing_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--memory", "lots"), ("--disk", "0"), ("--cpus", "-1"), ("--processes", "x")],
)
def test_bad_limits_are_usage_errors_that_say_why(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["local", "serve", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_help_says_where_the_key_can_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["local", "serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--api-key-file" in text
    assert "E2B_API_KEY" in text
    assert "visible to every local user" in text
    for flag in ("--memory", "--cpus", "--processes", "--disk"):
        assert flag in text


def test_one_parser_has_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listed = {
        line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:4] == " " * 4
    }
    assert {"local", "demo", "sandboxes"} <= listed


@pytest.mark.parametrize(
    ("text", "size"), [("1048576", 1024**2), ("512M", 512 * 1024**2), ("2g", 2 * 1024**3)]
)
def test_parse_size(text: str, size: int) -> None:
    assert cli.parse_size(text) == size
