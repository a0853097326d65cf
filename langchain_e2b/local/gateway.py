"""The gateway: the ASGI application that fronts the local runtime.

It serves E2B's control plane (:mod:`~langchain_e2b.local.api`) and proxies the data plane
(:mod:`~langchain_e2b.local.proxy`) to the sandboxes the supervisor
(:mod:`~langchain_e2b.local.supervisor`) runs.
"""

from __future__ import annotations

import json

from langchain_e2b.local import api, proxy
from langchain_e2b.local._http import Receive, Scope, Send, send_error
from langchain_e2b.local.supervisor import ApiError, Sandbox, Supervisor

__all__ = ["ApiError", "Gateway", "Sandbox"]


class Gateway(Supervisor):
    """The supervisor served over HTTP: control plane by path, data plane by sandbox id."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        try:
            if scope["path"].startswith(("/sandboxes", "/v2/sandboxes")):
                await api.handle(self, scope, receive, send)
            else:
                await proxy.handle(self, scope, receive, send)
        except ApiError as exc:
            await send_error(send, exc.status, exc.message)
        except json.JSONDecodeError as exc:
            await send_error(send, 400, f"request body is not valid JSON: {exc}")
