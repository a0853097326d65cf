"""The deepagents-code provider, found and used the way deepagents-code does it."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from langchain_e2b.provider import E2BProvider, SandboxNotFoundError

# deepagents_code.integrations.sandbox_registry.ENTRY_POINT_GROUP
ENTRY_POINT_GROUP = "deepagents_code.sandbox_providers"


@pytest.fixture
def dcode_env(e2b_connection: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the provider at the test runtime the way a dcode user would: the environment."""
    monkeypatch.setenv("DEEPAGENTS_CODE_E2B_API_KEY", e2b_connection["api_key"])
    for option, name in (("api_url", "E2B_API_URL"), ("sandbox_url", "E2B_SANDBOX_URL")):
        if option in e2b_connection:
            monkeypatch.setenv(name, e2b_connection[option])


def _load_provider() -> Any:
    """What deepagents-code's SandboxRegistry does: entry points by name, ``entry.load()()``."""
    entries = {
        entry.name: entry for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
    assert "e2b" in entries, "the e2b entry point is missing: reinstall the package"
    return entries["e2b"].load()()


@pytest.mark.usefixtures("dcode_env")
def test_provider_creates_reconnects_and_deletes() -> None:
    provider = _load_provider()
    assert isinstance(provider, E2BProvider)

    backend = provider.get_or_create(sandbox_id=None, command_timeout=60)
    sandbox_id = backend.id
    try:
        assert backend.write("/home/user/marker.txt", "kept").error is None
        again = provider.get_or_create(sandbox_id=sandbox_id)
        assert again.id == sandbox_id
        assert again.execute("cat /home/user/marker.txt").output == "kept"
        assert again.execute("pwd").output.strip() == "/home/user"
    finally:
        provider.delete(sandbox_id=sandbox_id)

    with pytest.raises(SandboxNotFoundError):
        provider.get_or_create(sandbox_id=sandbox_id)
    with pytest.raises(SandboxNotFoundError):
        provider.delete(sandbox_id=sandbox_id)


@pytest.mark.usefixtures("dcode_env")
async def test_provider_async_lifecycle() -> None:
    provider = _load_provider()
    backend = await provider.aget_or_create()
    sandbox_id = backend.id
    try:
        assert (await backend.aexecute("echo async")).output == "async\n"
        again = await provider.aget_or_create(sandbox_id=sandbox_id)
        assert again.id == sandbox_id
    finally:
        await provider.adelete(sandbox_id=sandbox_id)
    with pytest.raises(SandboxNotFoundError):
        await provider.adelete(sandbox_id=sandbox_id)


def test_provider_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="snapshot"):
        E2BProvider().get_or_create(snapshot="base")
