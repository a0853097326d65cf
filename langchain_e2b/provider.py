"""The ``e2b`` sandbox provider of ``deepagents-code``, and the drop-in module path for it.

Registered under the entry point group ``deepagents_code.sandbox_providers``; code that imports
``langchain_e2b.provider.E2BProvider`` (the other package published under this name) keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from langchain_e2b.deepagents import (
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT,
    DEFAULT_WORKDIR,
    AsyncE2BSandbox,
    E2BSandbox,
)
from langchain_e2b.errors import E2BConfigError
from langchain_e2b.session import E2BSandboxSession


def _deepagents_code() -> Any:
    """deepagents-code's provider module, when it is installed."""
    try:
        from deepagents_code.integrations import sandbox_provider
    except ImportError:
        return None
    return sandbox_provider


_code = _deepagents_code()

if _code is not None:
    SandboxNotFoundError: type[Exception] = _code.SandboxNotFoundError
else:

    class SandboxNotFoundError(LookupError):  # type: ignore[no-redef]
        """No sandbox has the requested id (deepagents-code's own class when installed)."""


EnvResolver = Callable[[str], "str | None"]


def _from_environment(name: str) -> str | None:
    """``DEEPAGENTS_CODE_<NAME>`` first, then ``<NAME>``, as deepagents-code resolves settings."""
    return os.environ.get(f"DEEPAGENTS_CODE_{name}") or os.environ.get(name) or None


def _seconds_option(value: int | str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise E2BConfigError(f"{name} must be a whole number of seconds, got {value!r}") from None
    if seconds < 0:
        raise E2BConfigError(f"{name} must not be negative, got {seconds}")
    return seconds


class E2BProvider:
    """The ``e2b`` sandbox provider of ``deepagents-code`` (``dcode --sandbox e2b``).

    With ``E2B_API_KEY`` (or ``DEEPAGENTS_CODE_E2B_API_KEY``) set it uses E2B cloud; without it,
    the local runtime embedded in the process, offline. Sandboxes on the embedded runtime end with
    the process that started them; to reconnect by id from another process, point
    ``E2B_API_URL``/``E2B_SANDBOX_URL`` at a runtime that outlives it, or use the cloud.

    Args:
        resolve_env_var: How settings are looked up by name (``E2B_API_KEY``,
            ``E2B_SANDBOX_TIMEOUT``, ``E2B_TEMPLATE``); default: ``DEEPAGENTS_CODE_<NAME>``, then
            ``<NAME>`` in the environment.
        **session_options: Options for every session (``api_url``, ``sandbox_url``, ``envs``...).
    """

    def __init__(
        self, *, resolve_env_var: EnvResolver | None = None, **session_options: Any
    ) -> None:
        self._env = resolve_env_var or _from_environment
        self.session_options = dict(session_options)
        key = self._env("E2B_API_KEY")
        if key and "api_key" not in self.session_options:
            self.session_options["api_key"] = key

    @property
    def metadata(self) -> Any:
        """deepagents-code's description of this provider (``None`` without deepagents-code)."""
        if _code is None:
            return None
        return _code.SandboxProviderMetadata(
            name="e2b",
            working_dir=DEFAULT_WORKDIR,
            install=_code.SandboxInstallHint(kind="package", name="langchain-e2b[deepagents]"),
            supports_sandbox_id=True,
            supports_snapshot_name=False,
            backend_module="langchain_e2b.deepagents",
        )

    def _session(
        self, sandbox_id: str | None, timeout: int | str | None, template: str | None, workdir: str
    ) -> E2BSandboxSession:
        lifetime = _seconds_option(
            timeout if timeout is not None else self._env("E2B_SANDBOX_TIMEOUT"), "timeout", 30 * 60
        )
        options = {
            **self.session_options,
            "cwd": workdir,
            "sandbox_timeout": max(lifetime, 1),
            "capture_chars": 2 * DEFAULT_MAX_OUTPUT_CHARS,
        }
        chosen = template or self._env("E2B_TEMPLATE")
        if chosen:
            options["template"] = chosen
        if sandbox_id is None:
            return E2BSandboxSession(**options)
        return E2BSandboxSession.connect(sandbox_id, **options)

    def get_or_create(
        self,
        *,
        sandbox_id: str | None = None,
        timeout: int | str | None = None,
        template: str | None = None,
        workdir: str = DEFAULT_WORKDIR,
        command_timeout: int | str | None = None,
        **kwargs: Any,
    ) -> E2BSandbox:
        """Connect to sandbox ``sandbox_id``, or create a sandbox; return its backend.

        Args:
            sandbox_id: An existing sandbox's id, or ``None`` for a new sandbox.
            timeout: Seconds the sandbox lives after its last call (``E2B_SANDBOX_TIMEOUT``;
                default 30 minutes).
            template: Template of a new sandbox (``E2B_TEMPLATE``; default code-interpreter).
            workdir: Working directory of ``execute``.
            command_timeout: Default seconds an ``execute`` call may run (default 30 minutes).
            **kwargs: Not supported; present so unknown options fail with a clear message.

        Raises:
            SandboxNotFoundError: No sandbox has the id ``sandbox_id``.
            TypeError: An option this provider does not know.
        """
        _no_extra(kwargs)
        session = self._session(sandbox_id, timeout, template, workdir)
        session.ensure_sandbox()
        if sandbox_id is not None and session.sandbox_id != sandbox_id:
            session.close()  # kills the replacement the session had to create
            raise SandboxNotFoundError(f"No E2B sandbox with id {sandbox_id!r} is running.")
        return E2BSandbox(
            session=session,
            workdir=workdir,
            timeout=_seconds_option(command_timeout, "command_timeout", DEFAULT_TIMEOUT),
        )

    async def aget_or_create(
        self,
        *,
        sandbox_id: str | None = None,
        timeout: int | str | None = None,  # the sandbox's lifetime
        template: str | None = None,
        workdir: str = DEFAULT_WORKDIR,
        command_timeout: int | str | None = None,
        **kwargs: Any,
    ) -> AsyncE2BSandbox:
        """Async :meth:`get_or_create`."""
        _no_extra(kwargs)
        session = self._session(sandbox_id, timeout, template, workdir)
        await session.aensure_sandbox()
        if sandbox_id is not None and session.sandbox_id != sandbox_id:
            await session.aclose()
            raise SandboxNotFoundError(f"No E2B sandbox with id {sandbox_id!r} is running.")
        return AsyncE2BSandbox(
            session=session,
            workdir=workdir,
            timeout=_seconds_option(command_timeout, "command_timeout", DEFAULT_TIMEOUT),
        )

    def delete(self, *, sandbox_id: str, **kwargs: Any) -> None:
        """Kill sandbox ``sandbox_id``.

        Raises:
            SandboxNotFoundError: No sandbox has that id.
        """
        _no_extra(kwargs)
        from e2b import Sandbox

        options = E2BSandboxSession(**self.session_options).connection_options()
        if not Sandbox.kill(sandbox_id, **options):
            raise SandboxNotFoundError(f"No E2B sandbox with id {sandbox_id!r} is running.")

    async def adelete(self, *, sandbox_id: str, **kwargs: Any) -> None:
        """Async :meth:`delete`."""
        _no_extra(kwargs)
        from e2b import AsyncSandbox

        options = E2BSandboxSession(**self.session_options).connection_options()
        if not await AsyncSandbox.kill(sandbox_id, **options):
            raise SandboxNotFoundError(f"No E2B sandbox with id {sandbox_id!r} is running.")


def _no_extra(kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(
            f"The e2b sandbox provider does not take {', '.join(sorted(kwargs))}; it takes "
            "timeout, template, workdir and command_timeout."
        )


__all__ = ["DEFAULT_WORKDIR", "E2BProvider", "SandboxNotFoundError"]
