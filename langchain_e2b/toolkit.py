"""``E2BSandboxToolkit``: every E2B tool, bound to one sandbox session that the toolkit owns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import BaseTool, BaseToolkit
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from langchain_e2b.code_tools import CodeTools
from langchain_e2b.errors import E2BConfigError
from langchain_e2b.session import E2BSandboxSession, SessionProvider
from langchain_e2b.tools import TOOL_CLASSES


class E2BSandboxToolkit(BaseToolkit):
    """All E2B tools bound to one sandbox session; closing the toolkit closes the session.

    Setup:
        Install ``langchain-e2b``. Set ``E2B_API_KEY`` to use the E2B cloud; without it the
        embedded local runtime (``langchain-e2b[local]``) is used.

    Instantiate:
        .. code-block:: python

            from langchain_e2b import E2BSandboxSession, E2BSandboxToolkit

            toolkit = E2BSandboxToolkit(
                session=E2BSandboxSession(sandbox_timeout=600),
                max_output_chars=8_000,  # what the model reads per call
            )
            tools = toolkit.get_tools()  # run_code, run_command, read_file, ...

    Use it as a context manager (``with`` or ``async with``), or call ``close()``/``aclose()``,
    so the sandbox is killed when the agent is done.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    session: SessionProvider = Field(default_factory=E2BSandboxSession)
    """The session (or session provider) every tool uses."""

    selected_tools: list[str] | None = None
    """Names of the tools to return (``run_code``, ``run_command``, ``read_file``,
    ``write_file``, ``edit_file``, ``list_files``, ``install_packages``, ``job_status``,
    ``job_output``, ``job_stop``); all when ``None``."""

    max_output_chars: int | None = None
    """Longest text a tool gives the model; longer output keeps its head and tail and the full
    text is saved in the sandbox. ``None``: the session's setting (20,000 by default)."""

    include_images: bool | None = None
    """Whether PNG/JPEG outputs reach the model as image blocks. ``None``: the session's setting
    (on by default)."""

    code_tools: Sequence[BaseTool | Callable[..., Any]] | CodeTools | None = None
    """LangChain tools that code run by ``run_code`` can call through its ``agent_tools``
    module (see :class:`~langchain_e2b.tools.E2BCodeInterpreterTool`)."""

    _tools: list[BaseTool] | None = PrivateAttr(default=None)

    @field_validator("selected_tools")
    @classmethod
    def _known_tools(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            unknown = [name for name in value if name not in TOOL_CLASSES]
            if unknown:
                raise E2BConfigError(
                    f"Unknown tool name(s) {unknown}; choose from {sorted(TOOL_CLASSES)}."
                )
        return value

    def get_tools(self) -> list[BaseTool]:
        """The tools, in a stable order, all sharing this toolkit's session."""
        if self._tools is None:
            names = self.selected_tools if self.selected_tools is not None else list(TOOL_CLASSES)
            self._tools = [
                TOOL_CLASSES[name](
                    session=self.session,
                    max_output_chars=self.max_output_chars,
                    include_images=self.include_images,
                    **({"code_tools": self.code_tools} if name == "run_code" else {}),
                )
                for name in names
            ]
        return list(self._tools)

    def close(self) -> None:
        """Close the session (killing its sandbox)."""
        close = getattr(self.session, "close", None)
        if callable(close):
            close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        aclose = getattr(self.session, "aclose", None)
        if callable(aclose):
            await aclose()

    def __enter__(self) -> E2BSandboxToolkit:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> E2BSandboxToolkit:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


__all__ = ["E2BSandboxToolkit"]
