"""The control plane: E2B's ``/sandboxes`` REST routes over the supervisor."""

from __future__ import annotations

import hmac
import time
from datetime import datetime, timezone
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
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        timeout = _timeout(body["timeout"]) if "timeout" in body else None
        # As on E2B: connecting resumes a paused sandbox, and extends a sandbox's lifetime
        # but never shortens it.
        resumed = await supervisor.resume_sandbox(parts[1], timeout)
        sandbox = _get(supervisor, parts[1])
        await send_json(send, 201 if resumed else 200, sandbox.describe(tokens=True))
    elif len(parts) == 3 and method == "POST" and parts[2] == "timeout":
        body = await read_json(receive)
        sandbox = _get(supervisor, parts[1])
        # A paused sandbox's clock is stopped: its new lifetime counts from when it was paused.
        sandbox.end_at = (sandbox.paused_at or time.time()) + _timeout(body.get("timeout"))
        await send_response(send, 204)
    elif len(parts) == 3 and method == "GET" and parts[2] == "metrics":
        _get(supervisor, parts[1])
        await send_json(send, 200, [])
    elif len(parts) == 3 and method == "POST" and parts[2] == "pause":
        await read_json(receive)  # keep-memory options: memory always stays resident here
        if not await supervisor.pause_sandbox(parts[1]):
            raise ApiError(409, f"sandbox '{parts[1]}' is already paused")
        await send_response(send, 204)
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
    auto_pause = body.get("autoPause", False)
    if not isinstance(auto_pause, bool):
        raise ApiError(400, "autoPause must be true or false")
    if isinstance(body.get("autoResume"), dict) and body["autoResume"].get("enabled"):
        raise ApiError(
            400,
            "autoResume is not available in the local runtime: leave auto_resume unset "
            "(connect resumes a paused sandbox)",
        )
    sandbox = await supervisor.create_sandbox(
        body["templateID"],
        timeout=_timeout(body.get("timeout")),
        metadata={str(k): str(v) for k, v in metadata.items()},
        env_vars={str(k): str(v) for k, v in env_vars.items()},
        network=network if isinstance(network, bool) else None,
        auto_pause=auto_pause,
    )
    await send_json(send, 201, sandbox.describe(tokens=True))


def _detail(sandbox: Sandbox) -> dict[str, Any]:
    # autoResume (a request to a paused sandbox resumes it) is not offered: connect resumes.
    lifecycle = {"onTimeout": "pause" if sandbox.auto_pause else "kill", "autoResume": False}
    return {**sandbox.listed(), "envdAccessToken": sandbox.envd_token, "lifecycle": lifecycle}


async def _list(supervisor: Supervisor, scope: Scope, send: Send) -> None:
    params = query(scope)
    states = {s for s in params.get("state", "running,paused").split(",") if s}
    if not states <= _STATES:
        raise ApiError(400, f"state must be a list of: {', '.join(sorted(_STATES))}")
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "order must be 'asc' or 'desc'")
    limit = _limit(params.get("limit"))
    sandboxes = [s for s in supervisor.sandboxes.values() if s.state in states]
    if params.get("template"):
        sandboxes = [s for s in sandboxes if s.template == params["template"]]
    wanted = _decode_metadata(params.get("metadata", ""))
    sandboxes = [s for s in sandboxes if all(s.metadata.get(k) == v for k, v in wanted.items())]
    if params.get("startedAfter"):
        since = _parse_time(params["startedAfter"], "startedAfter")
        sandboxes = [s for s in sandboxes if s.started_at >= since]
    # Newest first unless asked otherwise; the page token is the last key handed out, so pages
    # stay consistent while sandboxes come and go.
    sandboxes.sort(key=_list_key, reverse=order == "desc")
    if params.get("nextToken"):
        after = _decode_token(params["nextToken"])
        if order == "desc":
            sandboxes = [s for s in sandboxes if _list_key(s) < after]
        else:
            sandboxes = [s for s in sandboxes if _list_key(s) > after]
    page = sandboxes[:limit]
    headers: list[tuple[str, str]] = []
    if len(sandboxes) > limit:
        started_ns, sandbox_id = _list_key(page[-1])
        headers.append(("x-next-token", f"{started_ns}.{sandbox_id}"))
    await send_json(send, 200, [s.listed() for s in page], headers=headers)


_STATES = {"running", "paused"}
_MAX_LIMIT = 100


def _list_key(sandbox: Sandbox) -> tuple[int, str]:
    return round(sandbox.started_at * 1e9), sandbox.sandbox_id


def _limit(raw: str | None) -> int:
    if not raw:
        return _MAX_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {_MAX_LIMIT}")
    return int(raw)


def _decode_token(raw: str) -> tuple[int, str]:
    started, _, sandbox_id = raw.partition(".")
    if not started.isdigit() or not sandbox_id:
        raise ApiError(400, "nextToken is not a token this runtime handed out")
    return int(started), sandbox_id


def _parse_time(raw: str, name: str) -> float:
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an RFC 3339 time, got {raw!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _decode_metadata(raw: str) -> dict[str, str]:
    """Decode the SDK's doubly-encoded metadata filter (see the protocol reference)."""
    if not raw:
        return {}
    return {unquote(k): unquote(v[0]) for k, v in parse_qs(raw, keep_blank_values=True).items()}
