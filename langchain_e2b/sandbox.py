"""Drop-in module path of the Deep Agents backends (`from langchain_e2b.sandbox import E2BSandbox`).

The other package published under this name keeps its backends here; the code lives in
:mod:`langchain_e2b.deepagents`.
"""

from __future__ import annotations

from langchain_e2b.deepagents import DEFAULT_WORKDIR, AsyncE2BSandbox, E2BSandbox

__all__ = ["DEFAULT_WORKDIR", "AsyncE2BSandbox", "E2BSandbox"]
