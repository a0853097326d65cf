"""The control plane: E2B's ``/sandboxes`` REST routes over the supervisor."""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from langchain_e2b.local._http import (
    AUTHENTICATED,
    Receive,
    Scope,
    Send,
    header,
    query,
    read_json,
    send_json,
    send_response,
)
from langchain_e2b.local.supervisor import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    ApiError,
    Sandbox,
    Supervisor,
)


async def handle(supervisor: Supervisor, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one control-plane request (the API key is checked first)."""
    _check_api_key(supervisor, scope)
    scope[AUTHENTICATED] = True
    method: str = scope["method"]
    parts = [p for p in scope["path"].split("/") if p]
    if parts[0] == "v2":
        parts = parts[1:]
    # parts[0] == "sandboxes"
    if len(parts) == 1 and method == "POST":
        body = await read_json(receive)
        await _create(supervisor, body, send)
    elif len(parts) == 1 and method == "GET":
        await _list(supervisor, scope, send)
    elif len(parts) == 2 and method == "GET":
        await send_json(send, 200, _detail(_get(supervisor, parts[1])))
    elif len(parts) == 2 and method == "DELETE":
        if not await supervisor.kill_sandbox(parts[1]):
            raise ApiError(404, f"sandbox '{parts[1]}' not found")
        await send_response(send, 204)
    elif len(parts) == 3 and method == "POST" and parts[2] in ("connect", "resume"):
        body = await read_json(receive)
        sandbox = _get(supervisor, parts[1])
        if "timeout" in body:
            sandbox.end_at = time.time() + _timeout(body["timeout"])
        await send_json(send, 200, sandbox.describe(tokens=True))
    elif len(parts) == 3 and method == "POST" and parts[2] == "timeout":
        body = await read_json(receive)
        sandbox = _get(supervisor, parts[1])
        sandbox.end_at = time.time() + _timeout(body.get("timeout"))
        await send_response(send, 204)
    elif len(parts) == 3 and method == "GET" and parts[2] == "metrics":
        _get(supervisor, parts[1])
        await send_json(send, 200, [])
    elif len(parts) == 3 and method == "POST" and parts[2] == "pause":
        _get(supervisor, parts[1])
        raise ApiError(501, "the local runtime cannot pause sandboxes; kill it, or let it time out")
    else:
        raise ApiError(404, f"unknown route: {method} {scope['path']}")


def _check_api_key(supervisor: Supervisor, scope: Scope) -> None:
    given = header(scope, "x-api-key") or ""
    if not hmac.compare_digest(given.encode(), supervisor.api_key.encode()):
        raise ApiError(401, "Invalid API key: pass the key this local runtime printed")


def _get(supervisor: Supervisor, sandbox_id: str) -> Sandbox:
    sandbox = supervisor.sandboxes.get(sandbox_id)
    if sandbox is None:
        raise ApiError(404, f"sandbox '{sandbox_id}' not found")
    return sandbox


def _timeout(value: Any) -> int:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMEOUT:
        raise ApiError(400, f"timeout must be a whole number of seconds from 0 to {MAX_TIMEOUT}")
    return value


async def _create(supervisor: Supervisor, body: dict[str, Any], send: Send) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("templateID"), str):
        raise ApiError(400, "templateID is required")
    metadata = body.get("metadata") or {}
    env_vars = body.get("envVars") or {}
    if not isinstance(metadata, dict) or not isinstance(env_vars, dict):
        raise ApiError(400, "metadata and envVars must be objects of strings")
    network = body.get("allow_internet_access")
    sandbox = await supervisor.create_sandbox(
        body["templateID"],
        timeout=_timeout(body.get("timeout")),
        metadata={str(k): str(v) for k, v in metadata.items()},
        env_vars={str(k): str(v) for k, v in env_vars.items()},
        network=network if isinstance(network, bool) else None,
    )
    await send_json(send, 201, sandbox.describe(tokens=True))


def _detail(sandbox: Sandbox) -> dict[str, Any]:
    return {**sandbox.listed(), "envdAccessToken": sandbox.envd_token}


async def _list(supervisor: Supervisor, scope: Scope, send: Send) -> None:
    params = query(scope)
    sandboxes = sorted(supervisor.sandboxes.values(), key=lambda s: (s.started_at, s.sandbox_id))
    states = {s for s in params.get("state", "running").split(",") if s}
    if "running" not in states:
        sandboxes = []
    if params.get("order") == "desc":
        sandboxes.reverse()
    if params.get("template"):
        sandboxes = [s for s in sandboxes if s.template == params["template"]]
    wanted = _decode_metadata(params.get("metadata", ""))
    sandboxes = [s for s in sandboxes if all(s.metadata.get(k) == v for k, v in wanted.items())]
    start = int(params["nextToken"]) if params.get("nextToken", "").isdigit() else 0
    limit = int(params["limit"]) if params.get("limit", "").isdigit() else len(sandboxes)
    page = sandboxes[start : start + max(limit, 1)] if sandboxes else []
    headers: list[tuple[str, str]] = []
    if start + len(page) < len(sandboxes):
        headers.append(("x-next-token", str(start + len(page))))
    await send_json(send, 200, [s.listed() for s in page], headers=headers)


def _decode_metadata(raw: str) -> dict[str, str]:
    """Decode the SDK's doubly-encoded metadata filter (see the protocol reference)."""
    if not raw:
        return {}
    return {unquote(k): unquote(v[0]) for k, v in parse_qs(raw, keep_blank_values=True).items()}
