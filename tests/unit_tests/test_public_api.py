"""The public surface: a pinned ``__all__`` and the SDK integration tag."""

from __future__ import annotations

import importlib.util

import pytest

import langchain_e2b

DEEPAGENTS_NAMES = {"AsyncE2BSandbox", "E2BSandbox"}

EXPECTED_ALL = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert langchain_e2b.__all__ == EXPECTED_ALL
    assert sorted(langchain_e2b.__all__) == langchain_e2b.__all__
    deepagents_installed = importlib.util.find_spec("deepagents") is not None
    for name in langchain_e2b.__all__:
        if name in DEEPAGENTS_NAMES and not deepagents_installed:
            # Without the extra the name still exists and says how to get it.
            with pytest.raises(ImportError, match=r"langchain-e2b\[deepagents\]"):
                getattr(langchain_e2b, name)
            continue
        assert getattr(langchain_e2b, name) is not None


def test_sdk_traffic_is_tagged_with_our_integration() -> None:
    from e2b import ConnectionConfig

    user_agent = ConnectionConfig(api_key="k").headers["User-Agent"]
    assert user_agent.endswith(f" langchain-e2b/{langchain_e2b.__version__}")


def test_error_tiers() -> None:
    from langchain_core.tools import ToolException

    assert issubclass(langchain_e2b.E2BToolInputError, ToolException)
    assert issubclass(langchain_e2b.E2BConfigError, ValueError)
    assert not issubclass(langchain_e2b.E2BSandboxError, ToolException)
    for cls in (
        langchain_e2b.E2BConfigError,
        langchain_e2b.E2BSandboxError,
        langchain_e2b.E2BSessionClosedError,
        langchain_e2b.E2BToolInputError,
    ):
        assert issubclass(cls, langchain_e2b.E2BError)
