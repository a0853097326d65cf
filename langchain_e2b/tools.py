"""LangChain tools that run code, commands and file operations in an E2B sandbox."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr

from langchain_e2b import _format, _packages
from langchain_e2b._file_tools import (
    E2BEditFileTool,
    E2BListFilesTool,
    E2BReadFileTool,
    E2BWriteFileTool,
    apply_edit,
)
from langchain_e2b._job_tools import (
    E2BJobOutputTool,
    E2BJobStatusTool,
    E2BJobStopTool,
    started_text,
)
from langchain_e2b._packages import install_command, validate_package_spec
from langchain_e2b._tool_base import (
    OUTPUT_EVENT,
    SANDBOX_EVENT,
    Call,
    Context,
    InjectedRuntime,
    SandboxTool,
    Steps,
    call,
    package,
    with_notices,
)
from langchain_e2b.code_tools import CodeTools, as_code_tools
from langchain_e2b.errors import E2BError, E2BSandboxError, E2BToolInputError
from langchain_e2b.session import CommandResult, E2BSandboxSession

MAX_COMMAND_BYTES = 100_000
"""Longest command accepted: Linux refuses one argument over 128 KiB, and bash gets the command
as one argument (a background command also carries a short wrapper)."""
INSTALL_TIMEOUT = 600


# --- run_code ----------------------------------------------------------------------------------


class RunCodeInput(BaseModel):
    """Arguments of ``run_code``."""

    code: str = Field(
        description=(
            "The code to run. It runs in a persistent Jupyter kernel: variables, imports and "
            "functions from earlier calls are still defined. The value of the last line is shown "
            "as Out[n]; matplotlib charts (plt.show()) come back as images."
        )
    )
    language: str | None = Field(
        default=None,
        description=(
            "Kernel language: python, javascript, typescript or bash. Omit for Python; use "
            "another only if the sandbox has it."
        ),
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Seconds before the run is interrupted. Omit for the default.",
    )
    restart: bool = Field(
        default=False,
        description=(
            "Restart the kernel before running the code: every variable, import and function "
            "defined earlier is lost (files are kept). Use it only when the kernel is stuck or "
            "its state is broken."
        ),
    )
    runtime: InjectedRuntime = None


class E2BCodeInterpreterTool(SandboxTool):
    """Run code in a stateful Jupyter kernel inside an E2B sandbox.

    Setup:
        Install ``langchain-e2b``. Set ``E2B_API_KEY`` to use the E2B cloud; without it the
        embedded local runtime (``langchain-e2b[local]``) is used.

    Instantiate:
        .. code-block:: python

            from langchain_e2b import E2BCodeInterpreterTool, E2BSandboxSession

            tool = E2BCodeInterpreterTool(session=E2BSandboxSession())

    Invoke:
        .. code-block:: python

            tool.invoke({"code": "x = 21"})
            tool.invoke({"code": "x * 2"})  # 'Out[2]: 42'

    The text for the model holds stdout, stderr, the cell's value and any error (name, value,
    trimmed traceback); images come as image content blocks; the artifact is the full record.
    """

    name: str = "run_code"
    description: str = (
        "Run Python code in a persistent Jupyter kernel inside a sandbox and return its output. "
        "State (variables, imports, files) is kept between calls, so build on earlier results. "
        "Use print() or a final expression to see values."
    )
    args_schema: type[BaseModel] = RunCodeInput

    code_tools: Sequence[BaseTool | Callable[..., Any]] | CodeTools | None = None
    """LangChain tools the code can call through the ``agent_tools`` module (Python only), or
    :class:`~langchain_e2b.code_tools.CodeTools` to set the per-execution caps too."""

    _bridge: CodeTools | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        """Build the bridge for ``code_tools`` and tell the model about them."""
        super().model_post_init(context)
        self._bridge = as_code_tools(self.code_tools)
        if self._bridge is not None:
            self.description = self.description + self._bridge.describe()

    def _run_call(
        self, context: Context, code: str, language: str | None, timeout: float | None
    ) -> Call:
        session = context.session
        bridge = self._bridge
        if bridge is None or (language or "python").lower() != "python":
            return call(
                session.run_code,
                session.arun_code,
                code,
                language=language,
                timeout=timeout,
                on_output=context.on_output,
            )
        exchange = bridge.exchange(
            session,
            timeout=timeout,
            forward=context.on_output,
            config=context.config,
            runtime=context.runtime,
        )
        return Call(
            functools.partial(bridge.run, exchange, code, language=language, timeout=timeout),
            functools.partial(bridge.arun, exchange, code, language=language, timeout=timeout),
        )

    def _steps(
        self,
        context: Context,
        /,
        *,
        code: str,
        language: str | None = None,
        timeout: float | None = None,
        restart: bool = False,
    ) -> Steps:
        session = context.session
        restarted = None
        if restart:
            try:
                count = yield call(_restart_kernel, _arestart_kernel, session, language)
            except E2BError:
                raise
            except Exception as exc:  # the SDK's own, from the sandbox handle
                raise E2BSandboxError(f"Could not restart the kernel: {exc}") from exc
            restarted = KERNEL_RESTARTED if count else KERNEL_NOT_STARTED
        result = yield self._run_call(context, code, language, timeout)
        if restarted is not None:
            result.notice = " ".join(n for n in (result.notice, restarted) if n)
        rendered = _format.render_code(result, include_images=context.include_images)
        return (yield from package(context, result, rendered))


KERNEL_RESTARTED = (
    "The kernel was restarted as asked: every variable, import and function defined before "
    "this call is gone (files on disk are kept)."
)
KERNEL_NOT_STARTED = "The kernel had not run any code yet, so there was nothing to restart."


def _kernels(language: str | None, contexts: list[Any]) -> list[Any]:
    wanted = language or "python"
    return [c for c in contexts if str(getattr(c, "language", "")).lower() == wanted.lower()]


def _restart_kernel(session: E2BSandboxSession, language: str | None) -> int:
    """Restart the sandbox's kernels for ``language``; return how many there were."""
    sandbox = session.ensure_sandbox()
    kernels = _kernels(language, sandbox.list_code_contexts())
    for kernel in kernels:
        sandbox.restart_code_context(kernel)
    return len(kernels)


async def _arestart_kernel(session: E2BSandboxSession, language: str | None) -> int:
    """Async :func:`_restart_kernel`."""
    sandbox = await session.aensure_sandbox()
    kernels = _kernels(language, await sandbox.list_code_contexts())
    for kernel in kernels:
        await sandbox.restart_code_context(kernel)
    return len(kernels)


# --- run_command -------------------------------------------------------------------------------


class RunCommandInput(BaseModel):
    """Arguments of ``run_command``."""

    command: str = Field(description="The shell command to run with bash, e.g. `ls -la`.")
    cwd: str | None = Field(
        default=None, description="Working directory. Omit for the home directory."
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Seconds before the command is killed. Omit for the default.",
    )
    background: bool = Field(
        default=False,
        description=(
            "Start the command as a background job and return at once with its job id, for "
            "servers and long jobs; then job_output reads what it printed, job_status says "
            "whether it runs and job_stop stops it."
        ),
    )
    runtime: InjectedRuntime = None


class E2BShellTool(SandboxTool):
    """Run a shell command in the E2B sandbox; the exit code is part of the text.

    Invoke:
        .. code-block:: python

            tool = E2BShellTool(session=session)
            tool.invoke({"command": "python --version"})
    """

    name: str = "run_command"
    description: str = (
        "Run a bash command in the sandbox and return its stdout, stderr and exit code. "
        "Files and installed programs persist between calls. Use background=true for servers."
    )
    args_schema: type[BaseModel] = RunCommandInput

    def _steps(
        self,
        context: Context,
        /,
        *,
        command: str,
        cwd: str | None = None,
        timeout: float | None = None,
        background: bool = False,
    ) -> Steps:
        _require(command.strip(), "command must not be empty.")
        size = len(command.encode("utf-8", errors="surrogatepass"))
        if size > MAX_COMMAND_BYTES:
            raise _command_too_long(
                f"The command is {size} bytes, more than the {MAX_COMMAND_BYTES} a command may have"
            )
        session = context.session
        if background:
            job, started = yield from session.jobs.steps_start(command, cwd, timeout)
            started.pid = job.pid
            text = with_notices([started.notice] if started.notice else [], started_text(job))
            artifact = _format.artifact(started, truncated=False, full_output_path=None)
            return text, {**artifact, "job_id": job.id}
        result = yield call(
            session.run_command,
            session.arun_command,
            command,
            cwd=cwd,
            timeout=timeout,
            on_output=context.on_output,
        )
        rendered = _format.Rendered(_format.render_command(result))
        return (yield from package(context, result, rendered))


def _command_too_long(why: str) -> E2BToolInputError:
    return E2BToolInputError(
        f"{why}. Write the script or data to a file with write_file and run that file instead "
        "(e.g. `bash /tmp/script.sh`)."
    )


def _require(condition: object, message: str) -> None:
    if not condition:
        raise E2BToolInputError(message)


# --- install_packages ---------------------------------------------------------------------------


class InstallPackagesInput(BaseModel):
    """Arguments of ``install_packages``."""

    packages: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Package specs, e.g. ['pandas', 'scikit-learn>=1.4'].",
    )
    manager: _packages.Manager = Field(
        default="pip", description="'pip' for Python packages, 'npm' for JavaScript packages."
    )
    runtime: InjectedRuntime = None


class E2BInstallPackagesTool(SandboxTool):
    """Install pip (or npm) packages into the E2B sandbox."""

    name: str = "install_packages"
    description: str = (
        "Install Python packages with pip (or JavaScript packages with npm) in the sandbox, so "
        "run_code can import them. Give package names with optional versions only."
    )
    args_schema: type[BaseModel] = InstallPackagesInput

    @staticmethod
    def _rendered(
        result: CommandResult, packages: list[str], manager: _packages.Manager
    ) -> _format.Rendered:
        result.stdout = _packages.strip_ansi(result.stdout)
        result.stderr = _packages.strip_ansi(result.stderr)
        if result.exit_code == _packages.OFFLINE_EXIT or (
            result.exit_code not in (0, None)
            and _packages.is_network_failure(result.stdout + result.stderr)
        ):
            _, present, _ = _packages.summarize(result.stdout, packages, manager)
            missing = [p for p in packages if _packages.name_of(p) not in present] or packages
            lines = [result.notice] if result.notice else []
            lines.append(_packages.offline_message(missing, manager))
            if present and manager == "pip":
                lines.append(f"Already installed: {', '.join(present)}.")
            return _format.Rendered("\n".join(lines))
        if result.exit_code != 0:
            return _format.Rendered(_format.render_command(result))
        installed, present, rest = _packages.summarize(result.stdout, packages, manager)
        lines = [result.notice] if result.notice else []
        if installed:
            lines.append(f"Installed: {', '.join(installed)}.")
        if present:
            lines.append(f"Already installed: {', '.join(present)}.")
        if not installed and not present:
            lines.append(f"Installed: {', '.join(packages)}.")
        for extra in (rest, result.stderr.strip()):
            if extra:
                lines.append(extra)
        return _format.Rendered("\n".join(lines))

    def _steps(
        self,
        context: Context,
        /,
        *,
        packages: list[str],
        manager: _packages.Manager = "pip",
    ) -> Steps:
        session = context.session
        specs = [p.strip() for p in packages]
        result = yield call(
            session.run_command,
            session.arun_command,
            install_command(specs, manager),
            timeout=max(session.timeout, INSTALL_TIMEOUT),
            on_output=context.on_output,
        )
        return (yield from package(context, result, self._rendered(result, specs, manager)))


TOOL_CLASSES: dict[str, Callable[..., BaseTool]] = {
    "run_code": E2BCodeInterpreterTool,
    "run_command": E2BShellTool,
    "read_file": E2BReadFileTool,
    "write_file": E2BWriteFileTool,
    "edit_file": E2BEditFileTool,
    "list_files": E2BListFilesTool,
    "install_packages": E2BInstallPackagesTool,
    "job_status": E2BJobStatusTool,
    "job_output": E2BJobOutputTool,
    "job_stop": E2BJobStopTool,
}
"""Tool name the model sees -> tool class."""

__all__ = [
    "KERNEL_NOT_STARTED",
    "KERNEL_RESTARTED",
    "OUTPUT_EVENT",
    "SANDBOX_EVENT",
    "TOOL_CLASSES",
    "E2BCodeInterpreterTool",
    "E2BEditFileTool",
    "E2BInstallPackagesTool",
    "E2BJobOutputTool",
    "E2BJobStatusTool",
    "E2BJobStopTool",
    "E2BListFilesTool",
    "E2BReadFileTool",
    "E2BShellTool",
    "E2BWriteFileTool",
    "apply_edit",
    "install_command",
    "validate_package_spec",
]
