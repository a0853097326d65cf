"""LangChain tools that run code in E2B sandboxes, with a local E2B-compatible runtime."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from e2b import ConnectionConfig

from langchain_e2b.code_tools import CodeTools
from langchain_e2b.errors import (
    E2BBackendUnreachableError,
    E2BConfigError,
    E2BError,
    E2BFileError,
    E2BFileNotFoundError,
    E2BInvalidArgumentError,
    E2BSandboxError,
    E2BSandboxGoneError,
    E2BSessionClosedError,
    E2BToolInputError,
)
from langchain_e2b.jobs import Job, JobOutput
from langchain_e2b.notebook import HistoryRecorder
from langchain_e2b.session import (
    CodeResult,
    CommandResult,
    E2BSandboxSession,
    FileEntry,
    SandboxBackend,
    SessionEvent,
    SessionProvider,
)
from langchain_e2b.toolkit import E2BSandboxToolkit
from langchain_e2b.tools import (
    E2BCodeInterpreterTool,
    E2BEditFileTool,
    E2BInstallPackagesTool,
    E2BJobOutputTool,
    E2BJobStatusTool,
    E2BJobStopTool,
    E2BListFilesTool,
    E2BReadFileTool,
    E2BShellTool,
    E2BWriteFileTool,
)

_DEEPAGENTS = ("AsyncE2BSandbox", "E2BSandbox")


def __getattr__(name: str) -> Any:
    # The Deep Agents backends import deepagents (the optional extra), so only when asked for.
    if name in _DEEPAGENTS:
        try:
            from langchain_e2b import deepagents
        except ImportError as exc:
            raise ImportError(
                f"{name} needs Deep Agents: pip install 'langchain-e2b[deepagents]' ({exc})."
            ) from exc
        return getattr(deepagents, name)
    raise AttributeError(f"module 'langchain_e2b' has no attribute {name!r}")


try:
    __version__ = metadata.version("langchain-e2b")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Tags our traffic in the SDK's User-Agent; configs read it when they are built, so do it at import.
ConnectionConfig.set_integration(f"langchain-e2b/{__version__}")

__all__ = [
    "AsyncE2BSandbox",
    "CodeResult",
    "CodeTools",
    "CommandResult",
    "E2BBackendUnreachableError",
    "E2BCodeInterpreterTool",
    "E2BConfigError",
    "E2BEditFileTool",
    "E2BError",
    "E2BFileError",
    "E2BFileNotFoundError",
    "E2BInstallPackagesTool",
    "E2BInvalidArgumentError",
    "E2BJobOutputTool",
    "E2BJobStatusTool",
    "E2BJobStopTool",
    "E2BListFilesTool",
    "E2BReadFileTool",
    "E2BSandbox",
    "E2BSandboxError",
    "E2BSandboxGoneError",
    "E2BSandboxSession",
    "E2BSandboxToolkit",
    "E2BSessionClosedError",
    "E2BShellTool",
    "E2BToolInputError",
    "E2BWriteFileTool",
    "FileEntry",
    "HistoryRecorder",
    "Job",
    "JobOutput",
    "SandboxBackend",
    "SessionEvent",
    "SessionProvider",
    "__version__",
]
