"""Small helpers shared by the gateway and the in-jail agent (time stamps, sandbox paths, deno)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any


def rfc3339(ns: int) -> str:
    """Format nanoseconds since the epoch as RFC 3339 in UTC, the way E2B's APIs write times."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}Z" if nanos else f"{text}Z"


def resolve_path(home: str, path: Any) -> str:
    """Resolve a sandbox path the way envd does: relative to ``home``, ``~`` is ``home``.

    Raises:
        ValueError: ``path`` is not a string or contains NUL.
    """
    if not isinstance(path, str):
        raise ValueError("path must be a string")
    if "\0" in path:
        raise ValueError("path must not contain NUL")
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    resolved = os.path.normpath(os.path.join(home, path))
    if resolved.startswith("//"):
        resolved = "/" + resolved.lstrip("/")
    return resolved


def resolve_cwd(home: str, cwd: Any) -> str:
    """The working directory a command or code context asked for; ``home`` when none.

    Raises:
        ValueError: ``cwd`` is not a string or not an existing directory.
    """
    if cwd is None or cwd == "":
        return home
    if not isinstance(cwd, str):
        raise ValueError("cwd must be a string")
    path = resolve_path(home, cwd)
    if not os.path.isdir(path):
        raise ValueError(f"cwd '{path}' is not an existing directory")
    return path


def deno_package_binary() -> str | None:
    """The ``deno`` executable that the ``deno`` package installs, or None without one."""
    try:
        from deno import find_deno_bin
    except ImportError:
        return None
    try:
        return str(find_deno_bin())
    except (OSError, RuntimeError):
        return None
