"""The local E2B-compatible runtime: sandboxes as bubblewrap jails, spoken to by the E2B SDKs."""

from __future__ import annotations

try:
    from langchain_e2b.local.jail import IsolationUnavailableError, Limits
    from langchain_e2b.local.runtime import LocalRuntime, default_runtime, serve
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the local runtime needs the 'local' extra ({exc.name} is missing): "
        "pip install 'langchain-e2b[local]'"
    ) from exc

__all__ = ["IsolationUnavailableError", "Limits", "LocalRuntime", "default_runtime", "serve"]
