"""Which E2B backend a session talks to, and the sandboxes to kill when the interpreter exits.

The backend is resolved once per set of inputs, in this order: options passed to the session,
then ``E2B_API_KEY`` in the environment (E2B cloud, or self-hosted E2B through ``E2B_API_URL`` /
``E2B_DOMAIN``), then the local runtime embedded in this process. One log line says which was
chosen and why; an environment variable that is set but ignored gets a warning.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from e2b import ConnectionConfig, Sandbox
from pydantic import SecretStr

from langchain_e2b.errors import E2BConfigError

logger = logging.getLogger("langchain_e2b")

BackendKind = Literal["e2b", "embedded"]


@dataclass(frozen=True)
class SandboxBackend:
    """The backend a session's sandboxes live on.

    Attributes:
        kind: ``"e2b"`` for an E2B API server (the E2B cloud, self-hosted E2B or a separately
            started ``langchain-e2b local serve``), ``"embedded"`` for the local runtime started
            inside this process.
        api_url: The control-plane address the SDK uses.
        sandbox_url: The data-plane address, or ``None`` when the SDK derives one per sandbox
            from the E2B domain.
        reason: Why this backend was chosen, in a few words.
        dies_with_process: Whether the sandboxes end when this process ends (the embedded
            runtime): a sandbox id recorded elsewhere is then useless to another process.
    """

    kind: BackendKind
    api_url: str
    sandbox_url: str | None
    reason: str
    dies_with_process: bool
    options: dict[str, str] = field(repr=False, compare=False)
    """Keyword options for SDK calls (``api_key`` and maybe ``api_url``/``sandbox_url``)."""

    @property
    def address(self) -> str:
        """Where requests go, for messages: the API address (and the sandbox one if different)."""
        if self.sandbox_url and self.sandbox_url != self.api_url:
            return f"{self.api_url} (sandboxes at {self.sandbox_url})"
        return self.api_url

    def describe(self) -> str:
        """One line naming the backend, its address and why it was chosen."""
        name = "embedded local runtime" if self.kind == "embedded" else _e2b_name(self.api_url)
        return f"{name} at {self.address} ({self.reason})"


def _e2b_name(api_url: str) -> str:
    host = urlsplit(api_url).hostname or ""
    if host == "e2b.app" or host.endswith(".e2b.app") or host.endswith(".e2b.dev"):
        return "E2B cloud"
    return "E2B-compatible server"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_options(options: dict[str, str], reason: str, *, embedded: bool) -> SandboxBackend:
    config = ConnectionConfig(
        api_key=options["api_key"],
        api_url=options.get("api_url"),
        sandbox_url=options.get("sandbox_url"),
    )
    # The SDK also reads E2B_SANDBOX_URL itself when no sandbox_url is passed.
    sandbox_url = options.get("sandbox_url") or os.environ.get("E2B_SANDBOX_URL") or None
    return SandboxBackend(
        kind="embedded" if embedded else "e2b",
        api_url=config.api_url,
        sandbox_url=sandbox_url,
        reason=reason,
        dies_with_process=embedded,
        options=dict(options),
    )


def _check_addresses(backend: SandboxBackend) -> None:
    if backend.kind == "e2b" and _is_loopback(backend.api_url) and not backend.sandbox_url:
        _warn(
            f"The E2B API address {backend.api_url} is local but no sandbox address is set, so "
            "code, commands and files would go to the E2B cloud's sandbox domain. Pass "
            "sandbox_url=... or set E2B_SANDBOX_URL (a `langchain-e2b local serve` server uses "
            "the same address for both)."
        )


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=4)


_RESOLVED: dict[tuple[str | None, ...], SandboxBackend] = {}
_RESOLVE_LOCK = threading.Lock()
_ENV_VARS = ("E2B_API_KEY", "E2B_API_URL", "E2B_SANDBOX_URL", "E2B_DOMAIN")


def resolve_backend(
    api_key: SecretStr | None, api_url: str | None, sandbox_url: str | None
) -> SandboxBackend:
    """Pick the backend for these session options (once per distinct options and environment).

    Raises:
        E2BConfigError: If the options cannot work (an address without a key) or no backend is
            available (no key and no local runtime).
    """
    key = api_key.get_secret_value() if api_key is not None else None
    env = tuple(os.environ.get(name) for name in _ENV_VARS)
    cache_key = (key, api_url, sandbox_url, *env)
    with _RESOLVE_LOCK:
        backend = _RESOLVED.get(cache_key)
        if backend is None:
            backend = _resolve(key, api_url, sandbox_url)
            _RESOLVED[cache_key] = backend
            logger.info("E2B backend: %s", backend.describe())
            _check_addresses(backend)
    return backend


def _resolve(key: str | None, api_url: str | None, sandbox_url: str | None) -> SandboxBackend:
    env_key = os.environ.get("E2B_API_KEY")
    if key is not None or api_url or sandbox_url:
        key = key or env_key
        if not key:
            raise E2BConfigError(
                "api_url/sandbox_url were given without an API key: pass api_key=... "
                "or set E2B_API_KEY."
            )
        options = {"api_key": key}
        if api_url:
            options["api_url"] = api_url
        if sandbox_url:
            options["sandbox_url"] = sandbox_url
        return _from_options(options, "options passed to the session", embedded=False)
    if env_key:
        named = [name for name in _ENV_VARS if os.environ.get(name)]
        reason = f"{' and '.join(named)} {'is' if len(named) == 1 else 'are'} set"
        return _from_options({"api_key": env_key}, reason, embedded=False)
    ignored = [name for name in _ENV_VARS[1:] if os.environ.get(name)]
    if ignored:
        _warn(
            f"{' and '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} set but E2B_API_KEY "
            "is not, so they are ignored and the embedded local runtime is used. To use that "
            "server, set E2B_API_KEY too (a `langchain-e2b local serve` server prints its key)."
        )
    try:
        from langchain_e2b.local import default_runtime  # optional extra
    except ImportError as exc:
        raise E2BConfigError(
            "No E2B backend: set E2B_API_KEY to use the E2B cloud, or install the local runtime "
            "with `pip install 'langchain-e2b[local]'`."
        ) from exc
    try:
        options = dict(default_runtime().connection_options())
    except Exception as exc:
        raise E2BConfigError(
            f"E2B_API_KEY is not set and the embedded local runtime could not start: {exc}"
        ) from exc
    return _from_options(options, "E2B_API_KEY is not set", embedded=True)


# --- sandboxes killed at interpreter exit ------------------------------------------------------

_LIVE: dict[str, dict[str, str]] = {}
_LIVE_LOCK = threading.Lock()
# Every sandbox created through an embedded runtime in this process, to tell apart "killed here"
# from "belonged to another process's embedded runtime" when a recorded id is not found.
_CREATED_HERE: set[str] = set()


def register(sandbox_id: str, options: dict[str, str]) -> None:
    """Kill ``sandbox_id`` at interpreter exit unless :func:`unregister` is called first."""
    with _LIVE_LOCK:
        _LIVE[sandbox_id] = dict(options)
        _CREATED_HERE.add(sandbox_id)


def unregister(sandbox_id: str) -> None:
    """Forget ``sandbox_id``: it was killed or handed over."""
    with _LIVE_LOCK:
        _LIVE.pop(sandbox_id, None)


def created_here(sandbox_id: str) -> bool:
    """Whether this process created ``sandbox_id``."""
    with _LIVE_LOCK:
        return sandbox_id in _CREATED_HERE


def kill_live_sandboxes() -> None:
    """Kill every registered sandbox (best effort: the backend may already be gone)."""
    with _LIVE_LOCK:
        live = list(_LIVE.items())
        _LIVE.clear()
    for sandbox_id, options in live:
        try:
            Sandbox.kill(sandbox_id, request_timeout=5, **options)
        except Exception:
            logger.debug("could not kill sandbox %s at exit", sandbox_id, exc_info=True)


atexit.register(kill_live_sandboxes)
