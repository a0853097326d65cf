"""The machinery every sandbox tool shares: the session, the steps and their two drivers.

A tool's work is one generator, ``_steps(context, **arguments)``: it yields the session calls it
needs, each bound as a blocking and an awaitable function (:func:`call`), and returns the tool's
output. :func:`drive` runs it with blocking calls for ``_run``, :func:`adrive` with awaited ones
for ``_arun``, so no tool body exists twice. Live output and sandbox lifecycle events reach the
LangChain callbacks (and LangGraph's custom stream) of the call that caused them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolArg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_e2b import _call_order, _format
from langchain_e2b._steps import Twin
from langchain_e2b._steps import adrive as adrive
from langchain_e2b._steps import drive as drive
from langchain_e2b.errors import E2BConfigError, E2BFileError, E2BToolInputError
from langchain_e2b.session import (
    CodeResult,
    CommandResult,
    E2BSandboxSession,
    OutputCallback,
    SessionEvent,
    SessionProvider,
    collect_notices,
)

logger = logging.getLogger("langchain_e2b.tools")

OUTPUT_EVENT = "e2b_output"
"""Custom event carrying ``{"stream", "text", "sandbox_id"}`` for each output chunk."""
SANDBOX_EVENT = "e2b_sandbox"
"""Custom event carrying ``{"event", "sandbox_id", "message"}`` for sandbox lifecycle changes."""
DEFAULT_MAX_OUTPUT_CHARS = 20_000

P = ParamSpec("P")
T = TypeVar("T")


# --- callbacks -----------------------------------------------------------------------------------


def _langgraph_writer() -> Any:
    """LangGraph's stream writer inside a graph (``stream_mode="custom"``), else None."""
    try:
        from langgraph.config import get_stream_writer  # optional dependency

        return get_stream_writer()
    except (ImportError, RuntimeError, KeyError, AttributeError, TypeError):
        return None


class _Relay:
    """Forwards live output and lifecycle events of one tool call to LangChain callbacks."""

    def __init__(
        self,
        run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
        session: E2BSandboxSession,
    ) -> None:
        self.run_manager = run_manager
        self.session = session
        # Events are attached to this tool run, not to its parent.
        self.config: RunnableConfig | None = (
            {"callbacks": run_manager.get_child()} if run_manager is not None else None
        )
        self.writer = _langgraph_writer()

    def _output_data(self, stream: str, text: str) -> dict[str, Any]:
        return {"stream": stream, "text": text, "sandbox_id": self.session.sandbox_id}

    def _write(self, name: str, data: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer({"type": name, **data})

    def output(self, stream: str, text: str) -> None:
        data = self._output_data(stream, text)
        if isinstance(self.run_manager, CallbackManagerForToolRun):
            self.run_manager.on_text(text)
        if self.config is not None:
            dispatch_custom_event(OUTPUT_EVENT, data, config=self.config)
        self._write(OUTPUT_EVENT, data)

    async def aoutput(self, stream: str, text: str) -> None:
        data = self._output_data(stream, text)
        if isinstance(self.run_manager, AsyncCallbackManagerForToolRun):
            await self.run_manager.on_text(text)
        if self.config is not None:
            await adispatch_custom_event(OUTPUT_EVENT, data, config=self.config)
        self._write(OUTPUT_EVENT, data)

    def lifecycle(self, event: SessionEvent) -> None:
        if self.config is not None:
            dispatch_custom_event(SANDBOX_EVENT, event.to_dict(), config=self.config)
        self._write(SANDBOX_EVENT, event.to_dict())

    async def alifecycle(self, event: SessionEvent) -> None:
        if self.config is not None:
            await adispatch_custom_event(SANDBOX_EVENT, event.to_dict(), config=self.config)
        self._write(SANDBOX_EVENT, event.to_dict())


# The relay of the tool call running in this context: session events are raised in the context
# of the call that caused them, so each event reaches exactly that call's callbacks.
_CURRENT: contextvars.ContextVar[tuple[_Relay, bool] | None] = contextvars.ContextVar(
    "langchain_e2b_relay", default=None
)


def _forward_lifecycle(event: SessionEvent) -> Any:
    current = _CURRENT.get()
    if current is None:
        return None
    relay, is_async = current
    return relay.alifecycle(event) if is_async else relay.lifecycle(event)


InjectedRuntime = Annotated[Any, InjectedToolArg]
"""The ``ToolRuntime`` LangGraph's ``ToolNode`` injects into a field named ``runtime`` (the model
never sees it): its state tells a call its place among the message's parallel calls."""


# --- base -------------------------------------------------------------------------------------


class SandboxTool(BaseTool):
    """Holds the session (or a provider of sessions) and does the callback plumbing."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    session: SessionProvider = Field(default_factory=E2BSandboxSession, exclude=True)
    """The sandbox session, or an object whose ``get(config)``/``aget(config)`` returns one."""

    max_output_chars: int | None = None
    """Longest text the model gets; longer output keeps its head and tail and the full text is
    saved in the sandbox. ``None``: the session's ``max_output_chars`` (20,000 by default)."""

    include_images: bool | None = None
    """Whether PNG/JPEG outputs reach the model as image blocks. ``None``: the session's
    ``include_images`` (on by default)."""

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: Any = True

    @field_validator("max_output_chars")
    @classmethod
    def _enough_chars(cls, value: int | None) -> int | None:
        if value is not None and value < 200:
            raise E2BConfigError(f"max_output_chars must be at least 200, got {value}")
        return value

    def _kwargs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.pop("runtime", None)  # used by invoke() for ordering, not by the steps
        # A plain string input arrives positionally: it is the first field of the schema.
        if args and isinstance(self.args_schema, type) and issubclass(self.args_schema, BaseModel):
            first = next(iter(self.args_schema.model_fields))
            kwargs = {first: args[0], **kwargs}
        return kwargs

    def _context(
        self,
        session: E2BSandboxSession,
        notices: list[str],
        on_output: OutputCallback,
        relay: _Relay,
        runtime: Any,
    ) -> Context:
        chars = self.max_output_chars
        images = self.include_images
        return Context(
            session=session,
            notices=notices,
            on_output=on_output,
            max_output_chars=chars
            if chars is not None
            else getattr(session, "max_output_chars", DEFAULT_MAX_OUTPUT_CHARS),
            include_images=images
            if images is not None
            else getattr(session, "include_images", True),
            config=relay.config,
            runtime=runtime,
        )

    def _turn(self, value: Any, config: RunnableConfig | None) -> _call_order.Turn | None:
        """This call's place among the parallel calls of its message that share its sandbox."""
        if not (isinstance(value, dict) and value.get("type") == "tool_call"):
            return None
        runtime = (value.get("args") or {}).get("runtime")
        return _call_order.turn_for(self, runtime, value.get("id"), dict(config or {}))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the tool; a call made in parallel with others first waits for its turn."""
        turn = self._turn(input, config)
        if turn is None:
            return super().invoke(input, config, **kwargs)
        try:
            turn.wait()
            return super().invoke(input, config, **kwargs)
        finally:
            turn.done()

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async :meth:`invoke`."""
        turn = self._turn(input, config)
        if turn is None:
            return await super().ainvoke(input, config, **kwargs)
        try:
            await turn.await_turn()
            return await super().ainvoke(input, config, **kwargs)
        finally:
            turn.done()

    @contextlib.contextmanager
    def _calling(
        self,
        session: E2BSandboxSession,
        run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
        runtime: Any,
        *,
        is_async: bool,
    ) -> Iterator[Context]:
        """The context of one call: live output relayed, notices collected, errors for the model."""
        relay = _Relay(run_manager, session)
        session.add_listener(_forward_lifecycle)
        token = _CURRENT.set((relay, is_async))
        try:
            with collect_notices() as notices:
                on_output = relay.aoutput if is_async else relay.output
                context = self._context(session, notices, on_output, relay, runtime)
                try:
                    yield context
                except (FileNotFoundError, E2BToolInputError) as exc:
                    raise for_model(exc, notices) from exc
        finally:
            _CURRENT.reset(token)

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, Any]]:
        session = self.session.get(config)
        with self._calling(session, run_manager, kwargs.get("runtime"), is_async=False) as context:
            return drive(self._steps(context, **self._kwargs(args, kwargs)))

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, Any]]:
        session = await self.session.aget(config)
        with self._calling(session, run_manager, kwargs.get("runtime"), is_async=True) as context:
            return await adrive(self._steps(context, **self._kwargs(args, kwargs)))

    def _steps(self, *args: Any, **kwargs: Any) -> Steps:
        """The tool's work, called as ``_steps(context, **tool_arguments)``.

        It yields the session calls it needs (:func:`_call`) and returns the tool output.
        ``_run`` and ``_arun`` drive the same generator, sending back each call's result (or
        throwing its exception), so every tool is written once for both.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Context:
    """What a tool's steps work with: the call's session, notices and presentation options."""

    session: E2BSandboxSession
    notices: list[str]
    on_output: OutputCallback
    """Live output of this call: blocking on the sync path, a coroutine function on the async."""
    max_output_chars: int
    include_images: bool
    config: RunnableConfig | None = None
    """Config for child runs of this call (its callbacks as their parent)."""
    runtime: Any = None
    """The ``ToolRuntime`` LangGraph injected into this call, if any."""


Call = Twin
"""One session call a tool step asks for, bound twice: ``run()`` blocks, ``arun()`` awaits."""


def call(
    sync: Callable[P, T], async_: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> Call:
    """The call ``sync(*args, **kwargs)``, or ``async_`` with the same arguments (type-checked)."""
    return Call(
        functools.partial(sync, *args, **kwargs), functools.partial(async_, *args, **kwargs)
    )


Steps = Generator[Call, Any, tuple[Any, dict[str, Any]]]


def for_model(exc: FileNotFoundError | E2BToolInputError, notices: list[str]) -> E2BToolInputError:
    """The error message the model reads, after the call's notices (a restart explains a loss)."""
    if isinstance(exc, FileNotFoundError):
        message = (
            f"No such file or directory in the sandbox: {exc.args[0] if exc.args else exc}. "
            "Use list_files to see what exists."
        )
    else:
        message = str(exc)
    return E2BToolInputError(with_notices(notices, message))


WRITABLE_AREAS = ("/tmp",)
"""Where a sandbox can always write, besides the session's working directory."""


def write_error(exc: E2BFileError, session: E2BSandboxSession) -> E2BFileError:
    """``exc``, saying where writing is allowed when the path is outside those places.

    System directories (``/usr``, ``/etc``...) are read-only on the local runtime and belong to
    root on E2B. Either way, a write there that failed is best retried in one of these places.
    """
    areas = (session.cwd, *WRITABLE_AREAS)
    if any(exc.path == area or exc.path.startswith(area.rstrip("/") + "/") for area in areas):
        return exc
    return E2BFileError(
        f"{exc}. Files can be written under the working directory {session.cwd} and under "
        "/tmp; write there instead (system directories such as /usr are read-only).",
        path=exc.path,
    )


def with_notices(notices: list[str], text: str) -> str:
    return "\n".join([*notices, text]) if notices else text


def package(
    context: Context, record: CodeResult | CommandResult, rendered: _format.Rendered
) -> Steps:
    """Truncate the text if needed (saving the full text in the sandbox) and build the output."""
    text = rendered.text
    limit = context.max_output_chars
    truncated = len(text) > limit
    saved: str | None = None
    if truncated:
        session = context.session
        try:
            saved = yield call(session.save_output, session.asave_output, text)
        except Exception:  # best effort: the truncated output still reaches the model, and says so
            logger.warning("could not save the full output in the sandbox", exc_info=True)
        note = _format.saved_note(saved, not_kept=record.output_omitted)
        text = _format.truncate(text, limit, note=note)
    content = _format.content(text, rendered.images)
    return content, _format.artifact(record, truncated=truncated, full_output_path=saved)


__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "OUTPUT_EVENT",
    "SANDBOX_EVENT",
    "Call",
    "Context",
    "InjectedRuntime",
    "SandboxTool",
    "Steps",
    "adrive",
    "call",
    "drive",
    "for_model",
    "package",
    "with_notices",
    "write_error",
]
