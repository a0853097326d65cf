"""langchain-tests ``ToolsUnitTests`` for every tool (construction and schema; no I/O)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from langchain_e2b import (
    E2BCodeInterpreterTool,
    E2BEditFileTool,
    E2BInstallPackagesTool,
    E2BJobOutputTool,
    E2BJobStatusTool,
    E2BJobStopTool,
    E2BListFilesTool,
    E2BReadFileTool,
    E2BSandboxSession,
    E2BShellTool,
    E2BWriteFileTool,
)


class _Base(ToolsUnitTests):
    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        # Constructing a session does no I/O: the sandbox is created on first use.
        return {"session": E2BSandboxSession(api_key="unit-test", api_url="http://x.invalid")}


class TestCodeInterpreterToolUnit(_Base):
    tool_invoke_params_example = {"code": "print(1 + 1)"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BCodeInterpreterTool


class TestShellToolUnit(_Base):
    tool_invoke_params_example = {"command": "echo hello"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BShellTool


class TestReadFileToolUnit(_Base):
    tool_invoke_params_example = {"path": "notes.txt", "start_line": 1, "end_line": 10}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BReadFileTool


class TestWriteFileToolUnit(_Base):
    tool_invoke_params_example = {"path": "notes.txt", "content": "hello\n"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BWriteFileTool


class TestEditFileToolUnit(_Base):
    tool_invoke_params_example = {"path": "notes.txt", "old_text": "hello", "new_text": "bye"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BEditFileTool


class TestListFilesToolUnit(_Base):
    tool_invoke_params_example = {"path": ".", "depth": 2}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BListFilesTool


class TestInstallPackagesToolUnit(_Base):
    tool_invoke_params_example = {"packages": ["tabulate"], "manager": "pip"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BInstallPackagesTool


class TestJobStatusToolUnit(_Base):
    tool_invoke_params_example = {"job_id": "job-1"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BJobStatusTool


class TestJobOutputToolUnit(_Base):
    tool_invoke_params_example = {"job_id": "job-1", "wait": 2}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BJobOutputTool


class TestJobStopToolUnit(_Base):
    tool_invoke_params_example = {"job_id": "job-1"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BJobStopTool


class TestCodeInterpreterWithCodeToolsUnit(_Base):
    tool_invoke_params_example = {"code": "agent_tools.shout(text='hi')"}

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        from langchain_core.tools import tool

        @tool
        def shout(text: str) -> str:
            """Upper-case the text."""
            return text.upper()

        return {**super().tool_constructor_params, "code_tools": [shout]}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BCodeInterpreterTool
