"""Signed ``/files`` URLs (``download_url``, ``upload_url``), checked the way envd checks them.

A signature is ``v1_`` and the unpadded base64 of ``sha256("path:operation:user:token[:exp]")``,
where ``operation`` is ``read`` (GET) or ``write`` (POST), ``user`` the ``username`` query value
(empty when absent), ``token`` the sandbox's envd access token and ``exp`` the optional expiry in
Unix seconds. It lets a request without the access token header read or write that one path, as
that user, until it expires.

Threat model: a signed URL is a bearer credential for one path and one operation. Only a
signature made with the sandbox's own token passes (compared in constant time); changing the path,
the operation, the user or the expiry breaks it; an expired one is refused. The local runtime's
URLs carry no sandbox id (the SDK builds them from the shared ``sandbox_url``), so a signed request
is routed to the one sandbox whose token produces its signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import TypeVar

from langchain_e2b.local._http import Scope, query

EXPIRED = "signature is already expired"
_OPERATIONS = {"GET": "read", "POST": "write"}

_T = TypeVar("_T")


def sign(path: str, operation: str, user: str, token: str, expiration: int | None) -> str:
    """The v1 signature of one file operation."""
    raw = f"{path}:{operation}:{user}:{token}"
    if expiration is not None:
        raw += f":{expiration}"
    digest = hashlib.sha256(raw.encode("utf-8")).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


def is_signed(scope: Scope) -> bool:
    """Whether the request is a ``/files`` request carrying a signature."""
    return scope["path"] == "/files" and "signature" in query(scope)


def _matches(scope: Scope, token: str) -> bool:
    params = query(scope)
    operation = _OPERATIONS.get(scope["method"])
    given = params.get("signature", "")
    raw_exp = params.get("signature_expiration")
    if operation is None or not given:
        return False
    try:
        expiration = int(raw_exp) if raw_exp else None
    except ValueError:
        return False
    user = params.get("username", "")
    expected = sign(params.get("path", ""), operation, user, token, expiration)
    return hmac.compare_digest(given.encode(), expected.encode())


def refusal(scope: Scope, token: str, now: float | None = None) -> str | None:
    """Why a signed ``/files`` request may not use the sandbox with ``token``; None if it may.

    The messages are envd's (the SDK's own tests compare the expiry one word for word).
    """
    if not is_signed(scope):
        return "missing signature query parameter"
    if not _matches(scope, token):
        return "invalid signature"
    raw_exp = query(scope).get("signature_expiration")
    if raw_exp and int(raw_exp) < int(time.time() if now is None else now):
        return EXPIRED
    return None


def signer(scope: Scope, candidates: Iterable[tuple[str, _T]]) -> _T | None:
    """The candidate (``(token, value)`` pairs) whose token made the request's signature."""
    for token, value in candidates:
        if _matches(scope, token):
            return value
    return None
