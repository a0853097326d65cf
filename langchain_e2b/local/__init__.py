"""The local E2B-compatible runtime: sandboxes as bubblewrap jails, spoken to by the E2B SDKs.

The names below load on first use: the in-jail agent is a module of this package too, and it
needs none of the server (the gateway, the supervisor, cgroups) that ``runtime`` brings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_e2b.local.jail import IsolationUnavailableError, Limits
    from langchain_e2b.local.runtime import LocalRuntime, default_runtime, serve

__all__ = ["IsolationUnavailableError", "Limits", "LocalRuntime", "default_runtime", "serve"]

_MODULES = {
    "IsolationUnavailableError": "jail",
    "Limits": "jail",
    "LocalRuntime": "runtime",
    "default_runtime": "runtime",
    "serve": "runtime",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"the local runtime needs the 'local' extra ({exc.name} is missing): "
            "pip install 'langchain-e2b[local]'"
        ) from exc
