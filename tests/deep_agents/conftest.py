"""Fixtures for the Deep Agents tests: backends on the real SDK against the local runtime."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from langchain_e2b.deepagents import E2BSandbox

# Without the deepagents extra (Python 3.10, or the lowest-releases run) these tests cannot run.
if importlib.util.find_spec("deepagents") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def make_backend(e2b_connection: dict[str, Any]) -> Iterator[Callable[..., E2BSandbox]]:
    """Backends on the test runtime with their own sessions, all closed at the end of the test."""
    made: list[E2BSandbox] = []

    def factory(**options: Any) -> E2BSandbox:
        from langchain_e2b.deepagents import E2BSandbox

        metadata = {"test_run": uuid.uuid4().hex, **options.pop("metadata", {})}
        backend = E2BSandbox(**e2b_connection, metadata=metadata, **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


@pytest.fixture
def thread_id() -> str:
    """A thread id no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"
