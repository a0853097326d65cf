"""Integration fixtures: real sessions on the real SDK against the local runtime (or E2B cloud)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2b import SandboxQuery
from e2b_code_interpreter import Sandbox

from langchain_e2b import E2BSandboxSession


@pytest.fixture
def make_session(e2b_connection: dict[str, Any]) -> Iterator[Callable[..., E2BSandboxSession]]:
    """Sessions tagged with a unique metadata value, all closed at the end of the test."""
    made: list[E2BSandboxSession] = []

    def factory(**options: Any) -> E2BSandboxSession:
        metadata = {"test_run": uuid.uuid4().hex, **options.pop("metadata", {})}
        session = E2BSandboxSession(**e2b_connection, metadata=metadata, **options)
        made.append(session)
        return session

    yield factory
    for session in made:
        session.close()


def running_with(connection: dict[str, Any], metadata: dict[str, str]) -> list[str]:
    """Ids of running sandboxes carrying ``metadata``, straight from the backend."""
    paginator = Sandbox.list(query=SandboxQuery(metadata=metadata), **connection)
    ids: list[str] = []
    while paginator.has_next:
        ids.extend(s.sandbox_id for s in paginator.next_items())
    return ids


@pytest.fixture(scope="module")
def module_session(e2b_connection: dict[str, Any]) -> Iterator[E2BSandboxSession]:
    """One session shared by the standard tests of a module."""
    session = E2BSandboxSession(**e2b_connection, metadata={"test_module": "standard"})
    try:
        yield session
    finally:
        session.close()
