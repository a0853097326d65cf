"""Unit-test fixtures: the session wired to hand-written SDK fakes (no network)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2b_fakes import FakeAsyncSandbox, FakeBackend, FakeSandbox

from langchain_e2b import _backend, _lifecycle
from langchain_e2b.session import E2BSandboxSession

FAKE_CONNECTION = {"api_key": "test-key", "api_url": "http://fake.invalid"}


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBackend]:
    fake = FakeBackend()
    sync_cls = type("Sandbox", (FakeSandbox,), {"backend": fake})
    async_cls = type("AsyncSandbox", (FakeAsyncSandbox,), {"backend": fake})
    monkeypatch.setattr(_lifecycle, "Sandbox", sync_cls)
    monkeypatch.setattr(_lifecycle, "AsyncSandbox", async_cls)
    monkeypatch.setattr(_backend, "Sandbox", sync_cls)
    yield fake
    _backend._LIVE.clear()


@pytest.fixture(autouse=True)
def _fresh_backend_resolution() -> Iterator[None]:
    # Each test resolves the backend from its own environment.
    _backend._RESOLVED.clear()
    yield
    _backend._RESOLVED.clear()


@pytest.fixture
def make_session(backend: FakeBackend) -> Iterator[Callable[..., E2BSandboxSession]]:
    made: list[E2BSandboxSession] = []

    def factory(**options: Any) -> E2BSandboxSession:
        options = {**FAKE_CONNECTION, **options}
        session = E2BSandboxSession(**options)
        made.append(session)
        return session

    yield factory
    for session in made:
        session.close()
