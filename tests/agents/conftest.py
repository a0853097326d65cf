"""Fixtures for the agent tests: thread-scoped providers on the real runtime."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_e2b.langgraph import E2BThreadSessions


@pytest.fixture
def make_sessions(e2b_connection: dict[str, Any]) -> Iterator[Callable[..., E2BThreadSessions]]:
    """Thread-scoped providers on the test backend, all closed at the end of the test."""
    made: list[E2BThreadSessions] = []

    def factory(**options: Any) -> E2BThreadSessions:
        sessions = E2BThreadSessions(**e2b_connection, **options)
        made.append(sessions)
        return sessions

    yield factory
    for sessions in made:
        sessions.close()


@pytest.fixture
def thread_id() -> str:
    """A thread id no other test uses, so the backend can be queried by it."""
    return f"t-{uuid.uuid4().hex[:12]}"
