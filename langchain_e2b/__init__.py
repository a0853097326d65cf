"""LangChain tools that run code in E2B sandboxes, with a local E2B-compatible runtime."""

from __future__ import annotations

from importlib import metadata

from e2b import ConnectionConfig

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
    E2BListFilesTool,
    E2BReadFileTool,
    E2BShellTool,
    E2BWriteFileTool,
)

try:
    __version__ = metadata.version("langchain-e2b")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Tags our traffic in the SDK's User-Agent; configs read it when they are built, so do it at import.
ConnectionConfig.set_integration(f"langchain-e2b/{__version__}")

__all__ = [
    "CodeResult",
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
    "E2BListFilesTool",
    "E2BReadFileTool",
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
    "SandboxBackend",
    "SessionEvent",
    "SessionProvider",
    "__version__",
]
