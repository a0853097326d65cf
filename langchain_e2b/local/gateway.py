"""The gateway: the ASGI application that fronts the local runtime.

It serves E2B's control plane (:mod:`~langchain_e2b.local.api`) and proxies the data plane
(:mod:`~langchain_e2b.local.proxy`) to the sandboxes the supervisor
(:mod:`~langchain_e2b.local.supervisor`) runs. Every failure is answered in E2B's error shape,
``{"code": status, "message": cause}``, so the SDK shows the user the cause.
"""

from __future__ import annotations

import json
import logging

from langchain_e2b.local import api, proxy
from langchain_e2b.local._http import AUTHENTICATED, Message, Receive, Scope, Send, send_error
from langchain_e2b.local.supervisor import ApiError, Sandbox, Supervisor

__all__ = ["ApiError", "Gateway", "Sandbox"]

log = logging.getLogger("langchain_e2b.local")


class Gateway(Supervisor):
    """The supervisor served over HTTP: control plane by path, data plane by sandbox id."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        started = False

        async def reply(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not scope.get(AUTHENTICATED):
                    # A client that showed no key or token gets one answer per connection:
                    # idle connections may then stay open only for clients that hold one
                    # (see connections.py).
                    headers = [*message.get("headers", ()), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            if scope["path"].startswith(("/sandboxes", "/v2/sandboxes")):
                await api.handle(self, scope, receive, reply)
            else:
                await proxy.handle(self, scope, receive, reply)
        except ApiError as exc:
            if started:
                raise
            await send_error(reply, exc.status, exc.message)
        except json.JSONDecodeError as exc:
            if started:
                raise
            await send_error(reply, 400, f"request body is not valid JSON: {exc}")
        except Exception as exc:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if started:
                raise
            await send_error(
                reply,
                500,
                f"the local runtime failed to serve {scope['method']} {scope['path']}: "
                f"{type(exc).__name__}: {exc}",
            )
