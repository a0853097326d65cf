"""LangGraph integration: one sandbox per thread, and the ``create_agent`` middleware.

The code lives in :mod:`langchain_e2b.threads` (:class:`E2BThreadSessions`) and
:mod:`langchain_e2b.middleware` (:class:`E2BSandboxMiddleware`); this module gathers them under
one import.
"""

from __future__ import annotations

from langchain_e2b.middleware import E2BSandboxMiddleware, sandbox_prompt
from langchain_e2b.threads import (
    DEFAULT_IDLE_TIMEOUT,
    STORE_NAMESPACE,
    THREAD_METADATA_KEY,
    E2BThreadSessions,
    thread_id_of,
)

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "STORE_NAMESPACE",
    "THREAD_METADATA_KEY",
    "E2BSandboxMiddleware",
    "E2BThreadSessions",
    "sandbox_prompt",
    "thread_id_of",
]
