"""LangChain tools that run code in E2B sandboxes, with a local E2B-compatible runtime.

The public names load on first use, so that importing the local runtime
(``langchain_e2b.local``, whose in-jail agent runs in every sandbox) loads nothing from the
LangChain side.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
"""The package version; ``pyproject.toml`` reads it from here."""

if TYPE_CHECKING:
    from langchain_e2b.code_tools import CodeTools as CodeTools
    from langchain_e2b.deepagents import AsyncE2BSandbox as AsyncE2BSandbox
    from langchain_e2b.deepagents import E2BSandbox as E2BSandbox
    from langchain_e2b.errors import E2BBackendUnreachableError as E2BBackendUnreachableError
    from langchain_e2b.errors import E2BConfigError as E2BConfigError
    from langchain_e2b.errors import E2BError as E2BError
    from langchain_e2b.errors import E2BFileError as E2BFileError
    from langchain_e2b.errors import E2BFileNotFoundError as E2BFileNotFoundError
    from langchain_e2b.errors import E2BInvalidArgumentError as E2BInvalidArgumentError
    from langchain_e2b.errors import E2BSandboxError as E2BSandboxError
    from langchain_e2b.errors import E2BSandboxGoneError as E2BSandboxGoneError
    from langchain_e2b.errors import E2BSessionClosedError as E2BSessionClosedError
    from langchain_e2b.errors import E2BToolInputError as E2BToolInputError
    from langchain_e2b.jobs import Job as Job
    from langchain_e2b.jobs import JobOutput as JobOutput
    from langchain_e2b.notebook import HistoryRecorder as HistoryRecorder
    from langchain_e2b.session import CodeResult as CodeResult
    from langchain_e2b.session import CommandResult as CommandResult
    from langchain_e2b.session import E2BSandboxSession as E2BSandboxSession
    from langchain_e2b.session import FileEntry as FileEntry
    from langchain_e2b.session import SandboxBackend as SandboxBackend
    from langchain_e2b.session import SessionEvent as SessionEvent
    from langchain_e2b.session import SessionProvider as SessionProvider
    from langchain_e2b.toolkit import E2BSandboxToolkit as E2BSandboxToolkit
    from langchain_e2b.tools import E2BCodeInterpreterTool as E2BCodeInterpreterTool
    from langchain_e2b.tools import E2BEditFileTool as E2BEditFileTool
    from langchain_e2b.tools import E2BInstallPackagesTool as E2BInstallPackagesTool
    from langchain_e2b.tools import E2BJobOutputTool as E2BJobOutputTool
    from langchain_e2b.tools import E2BJobStatusTool as E2BJobStatusTool
    from langchain_e2b.tools import E2BJobStopTool as E2BJobStopTool
    from langchain_e2b.tools import E2BListFilesTool as E2BListFilesTool
    from langchain_e2b.tools import E2BReadFileTool as E2BReadFileTool
    from langchain_e2b.tools import E2BShellTool as E2BShellTool
    from langchain_e2b.tools import E2BWriteFileTool as E2BWriteFileTool

# Which module defines each public name.
_MODULES = {
    "code_tools": "CodeTools",
    "deepagents": "AsyncE2BSandbox E2BSandbox",
    "errors": (
        "E2BBackendUnreachableError E2BConfigError E2BError E2BFileError E2BFileNotFoundError "
        "E2BInvalidArgumentError E2BSandboxError E2BSandboxGoneError E2BSessionClosedError "
        "E2BToolInputError"
    ),
    "jobs": "Job JobOutput",
    "notebook": "HistoryRecorder",
    "session": (
        "CodeResult CommandResult E2BSandboxSession FileEntry SandboxBackend SessionEvent "
        "SessionProvider"
    ),
    "toolkit": "E2BSandboxToolkit",
    "tools": (
        "E2BCodeInterpreterTool E2BEditFileTool E2BInstallPackagesTool E2BJobOutputTool "
        "E2BJobStatusTool E2BJobStopTool E2BListFilesTool E2BReadFileTool E2BShellTool "
        "E2BWriteFileTool"
    ),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    module_name = _WHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module 'langchain_e2b' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"langchain_e2b.{module_name}")
    except ImportError as exc:
        if module_name != "deepagents":
            raise
        # The Deep Agents backends import deepagents, an optional extra.
        raise ImportError(
            f"{name} needs Deep Agents: pip install 'langchain-e2b[deepagents]' ({exc})."
        ) from exc
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


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
