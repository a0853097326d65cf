"""``sandboxes list`` / ``sandboxes prune`` against a private local runtime (so pruning cannot
touch the sandboxes of other tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_e2b import E2BSandboxSession
from langchain_e2b.cli import NOTHING_CONFIGURED, main, parse_duration
from langchain_e2b.langgraph import E2BThreadSessions


@pytest.fixture(scope="module")
def private_runtime() -> Iterator[dict[str, str]]:
    from langchain_e2b.local import LocalRuntime

    with LocalRuntime(pool_size=0) as runtime:
        yield runtime.connection_options()


@pytest.fixture
def env(private_runtime: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("E2B_API_KEY", private_runtime["api_key"])
    monkeypatch.setenv("E2B_API_URL", private_runtime["api_url"])
    monkeypatch.setenv("E2B_SANDBOX_URL", private_runtime["sandbox_url"])
    return private_runtime


def test_list_shows_our_sandboxes_with_their_thread_and_prune_kills_them(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = E2BThreadSessions(**env)
    threaded = sessions.get({"configurable": {"thread_id": "cli-thread"}})
    threaded.run_code("1")
    plain = E2BSandboxSession(**env)
    plain.run_code("1")
    try:
        assert main(["sandboxes", "list"]) == 0
        listing = capsys.readouterr().out
        lines = {line.split()[0]: line for line in listing.splitlines()[1:]}
        assert set(lines) == {threaded.sandbox_id, plain.sandbox_id}
        assert "cli-thread" in lines[threaded.sandbox_id]
        assert listing.startswith("SANDBOX")

        assert main(["sandboxes", "prune", "--older-than", "1h"]) == 0
        assert "Killed 0 sandbox(es)" in capsys.readouterr().out

        assert main(["sandboxes", "prune", "--older-than", "0s", "--dry-run"]) == 0
        assert "Would kill 2" in capsys.readouterr().out

        assert main(["sandboxes", "prune", "--older-than", "0s"]) == 0
        assert "Killed 2 sandbox(es)" in capsys.readouterr().out
        assert main(["sandboxes", "list"]) == 0
        assert "No langchain-e2b sandboxes are running." in capsys.readouterr().out
    finally:
        sessions.close()
        plain.close()


def test_without_a_key_list_and_prune_say_what_to_set_with_one_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    assert main(["sandboxes", "list"]) == NOTHING_CONFIGURED != 0
    listed = capsys.readouterr().err
    assert main(["sandboxes", "prune"]) == NOTHING_CONFIGURED
    assert capsys.readouterr().err == listed
    assert "E2B_API_KEY" in listed


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900), ("1h", 3600), ("1.5d", 129600)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "h", "-1h", "1 hour"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
