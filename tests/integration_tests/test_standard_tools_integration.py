"""langchain-tests ``ToolsIntegrationTests`` for every tool, on the real SDK and local runtime."""

from __future__ import annotations

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests

from langchain_e2b import (
    E2BCodeInterpreterTool,
    E2BEditFileTool,
    E2BInstallPackagesTool,
    E2BListFilesTool,
    E2BReadFileTool,
    E2BSandboxSession,
    E2BShellTool,
    E2BWriteFileTool,
)


class _Base(ToolsIntegrationTests):
    @pytest.fixture
    def tool(self, module_session: E2BSandboxSession) -> BaseTool:
        module_session.write_file("notes.txt", "hello\nworld\n")
        return self.tool_constructor(session=module_session)  # type: ignore[operator]


class TestCodeInterpreterToolIntegration(_Base):
    tool_invoke_params_example = {"code": "print(1 + 1)"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BCodeInterpreterTool


class TestShellToolIntegration(_Base):
    tool_invoke_params_example = {"command": "echo hello"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BShellTool


class TestReadFileToolIntegration(_Base):
    tool_invoke_params_example = {"path": "notes.txt", "start_line": 1, "end_line": 1}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BReadFileTool


class TestWriteFileToolIntegration(_Base):
    tool_invoke_params_example = {"path": "out/written.txt", "content": "hello\n"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BWriteFileTool


class TestEditFileToolIntegration(_Base):
    # Replacing a word with itself keeps the example valid on every repeated invocation.
    tool_invoke_params_example = {"path": "notes.txt", "old_text": "world", "new_text": "world"}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BEditFileTool


class TestListFilesToolIntegration(_Base):
    tool_invoke_params_example = {"path": ".", "depth": 1}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BListFilesTool


class TestInstallPackagesToolIntegration(_Base):
    # Already installed, so pip answers without reaching a package index (tests run offline).
    tool_invoke_params_example = {"packages": ["pip"]}

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return E2BInstallPackagesTool
