"""``E2BSandboxMiddleware``: a sandbox per thread, its tools and a prompt for ``create_agent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command

from langchain_e2b.code_tools import CodeTools, as_code_tools
from langchain_e2b.errors import E2BConfigError
from langchain_e2b.threads import E2BThreadSessions, thread_id_of
from langchain_e2b.toolkit import E2BSandboxToolkit


def sandbox_prompt(
    tool_names: list[str], *, cwd: str = "/home/user", code_tools: Sequence[str] = ()
) -> str:
    """The system-prompt section that tells the model about its sandbox and tools.

    ``code_tools`` names the tools code can call through ``agent_tools`` (see ``run_code``).
    """
    lines = [
        "## Code sandbox",
        "You have an isolated E2B sandbox (Linux) that belongs to this conversation.",
    ]
    if "run_code" in tool_names:
        lines.append(
            "- `run_code` runs Python in a Jupyter kernel. Variables, imports and files persist "
            "between calls: build on earlier results instead of recomputing them. Charts you "
            "show (matplotlib) come back to you as images."
        )
    if "run_code" in tool_names and code_tools:
        lines.append(
            "- In run_code, the module `agent_tools` has a function for each of these tools: "
            + ", ".join(f"`{n}`" for n in code_tools)
            + ". When a task needs many calls (one per item), make them in one cell with a loop "
            "and print only the summary; help(agent_tools) describes them."
        )
    if "run_command" in tool_names:
        lines.append("- `run_command` runs shell commands (bash).")
        if "job_output" in tool_names:
            lines.append(
                "- For servers and long jobs, `run_command` with background=true returns a job "
                "id; `job_output` reads what the job printed since you last looked (wait=seconds "
                "to give it time), `job_status` says whether it runs, `job_stop` stops it."
            )
    file_tools = [
        n for n in ("read_file", "write_file", "edit_file", "list_files") if n in tool_names
    ]
    if file_tools:
        lines.append("- " + ", ".join(f"`{n}`" for n in file_tools) + " work on sandbox paths.")
    lines.append(f"- The working directory is {cwd}; relative paths start there.")
    packages = "pandas, numpy and matplotlib are preinstalled"
    if "install_packages" in tool_names:
        packages += "; use `install_packages` for anything else"
    lines.append(f"- {packages}.")
    lines.append(
        "- If a tool result says the sandbox was restarted, earlier variables and files are "
        "gone: recreate what you need before continuing."
    )
    return "\n".join(lines)


class E2BSandboxMiddleware(AgentMiddleware):
    """Gives a ``create_agent`` agent a sandbox per thread, its tools and a prompt about it.

    Adds the sandbox tools (``run_code``, ``run_command``, file tools, ``install_packages``),
    appends a short section about the sandbox to the system prompt, binds each conversation
    thread to its own sandbox through :class:`E2BThreadSessions`, and cleans up:

    - ``cleanup="idle"`` (default): the thread keeps its sandbox across runs; the sandbox is
      killed after ``idle_timeout`` seconds without a call, or paused with
      ``idle_policy="pause"`` (its state is kept and the thread's next call resumes it).
    - ``cleanup="run"``: the thread's sandbox is killed when each run ends.
    - ``on_failure="kill"`` (default): when a model or tool call raises out of the run, the
      thread's sandbox is killed before the error propagates. ``"keep"`` leaves it to the policy.

    Example:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain_e2b.middleware import E2BSandboxMiddleware

            agent = create_agent("openai:gpt-4.1-mini", middleware=[E2BSandboxMiddleware()])
            agent.invoke({"messages": [("user", "What is 2**100?")]})

    Args:
        sessions: The provider to use; by default a new :class:`E2BThreadSessions`.
        cleanup: ``"idle"`` or ``"run"`` (see above).
        on_failure: ``"kill"`` or ``"keep"`` (see above).
        selected_tools: Names of the tools to add; all when ``None``.
        code_tools: LangChain tools that code run by ``run_code`` can call through its
            ``agent_tools`` module (give them to the agent too if the model may also call them
            directly).
        prompt: The system-prompt section; ``""`` adds none. By default :func:`sandbox_prompt`.
        **session_options: Options for the default :class:`E2BThreadSessions` (``idle_timeout``,
            ``idle_policy``, ``store``, ``template``, ``api_key``, ...).
    """

    def __init__(
        self,
        sessions: E2BThreadSessions | None = None,
        *,
        cleanup: Literal["idle", "run"] = "idle",
        on_failure: Literal["kill", "keep"] = "kill",
        selected_tools: list[str] | None = None,
        code_tools: Sequence[BaseTool | Callable[..., Any]] | CodeTools | None = None,
        prompt: str | None = None,
        **session_options: Any,
    ) -> None:
        if sessions is not None and session_options:
            raise E2BConfigError(
                "Pass session options to E2BThreadSessions(...) or to the middleware, not both."
            )
        if cleanup not in ("idle", "run"):
            raise E2BConfigError(f"cleanup must be 'idle' or 'run', got {cleanup!r}")
        if on_failure not in ("kill", "keep"):
            raise E2BConfigError(f"on_failure must be 'kill' or 'keep', got {on_failure!r}")
        super().__init__()
        self.sessions = sessions if sessions is not None else E2BThreadSessions(**session_options)
        self.cleanup = cleanup
        self.on_failure = on_failure
        bridge = as_code_tools(code_tools)
        self.tools = E2BSandboxToolkit(
            session=self.sessions, selected_tools=selected_tools, code_tools=bridge
        ).get_tools()
        if prompt is None:
            cwd = self.sessions.session_options.get("cwd", "/home/user")
            prompt = sandbox_prompt(
                [tool.name for tool in self.tools],
                cwd=cwd,
                code_tools=list(bridge.by_name) if bridge is not None else (),
            )
        self.prompt = prompt

    # --- system prompt and failure cleanup ---------------------------------------------------

    def _with_prompt(self, request: ModelRequest) -> ModelRequest:
        if not self.prompt:
            return request
        current = request.system_message
        if current is None:
            message = SystemMessage(content=self.prompt)
        elif isinstance(current.content, str):
            message = SystemMessage(content=f"{current.content}\n\n{self.prompt}")
        else:
            message = SystemMessage(
                content=[*current.content, {"type": "text", "text": self.prompt}]
            )
        return request.override(system_message=message)

    def _failed(self, exc: BaseException) -> bool:
        """Whether a run failure should kill the thread's sandbox now."""
        return self.on_failure == "kill" and not isinstance(exc, GraphBubbleUp)

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        """Add the sandbox section to the system prompt; clean up if the model call fails."""
        try:
            return handler(self._with_prompt(request))
        except BaseException as exc:
            if self._failed(exc):
                self.sessions.close_thread(_runtime_thread(request.runtime))
            raise

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call`."""
        try:
            return await handler(self._with_prompt(request))
        except BaseException as exc:
            if self._failed(exc):
                await self.sessions.aclose_thread(_runtime_thread(request.runtime))
            raise

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Clean up if a tool call raises out of the run."""
        try:
            return handler(request)
        except BaseException as exc:
            if self._failed(exc):
                self.sessions.close_thread(_runtime_thread(request.runtime))
            raise

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async :meth:`wrap_tool_call`."""
        try:
            return await handler(request)
        except BaseException as exc:
            if self._failed(exc):
                await self.sessions.aclose_thread(_runtime_thread(request.runtime))
            raise

    # --- end of run ----------------------------------------------------------------------------

    def after_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """With ``cleanup="run"``, kill the thread's sandbox when the run ends."""
        if self.cleanup == "run":
            self.sessions.close_thread(_runtime_thread(runtime))
        return None

    async def aafter_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async :meth:`after_agent`."""
        if self.cleanup == "run":
            await self.sessions.aclose_thread(_runtime_thread(runtime))
        return None


def _runtime_thread(runtime: Any) -> str | None:
    """The thread id of the run ``runtime`` belongs to (a ``Runtime`` or ``ToolRuntime``)."""
    config = getattr(runtime, "config", None)
    if isinstance(config, dict):
        return thread_id_of(config)  # type: ignore[arg-type]
    info = getattr(runtime, "execution_info", None)
    if info is not None and getattr(info, "thread_id", None) is not None:
        return str(info.thread_id)
    try:
        return thread_id_of(get_config())
    except RuntimeError:  # not inside a graph run
        return None


__all__ = ["E2BSandboxMiddleware", "sandbox_prompt"]
