"""Offline testing helpers: a scripted chat model that replays a tool-calling conversation.

Use :class:`ScriptedChatModel` to test an agent, a graph or the sandbox tools without a model
provider: the conversation is fixed, so the test checks what the sandbox did, not what a model
chose to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Step = AIMessage | str | Callable[[list[BaseMessage]], AIMessage | str]
"""One scripted model turn: a message, a plain final answer, or a function of the conversation."""

END_OF_SCRIPT = "The scripted conversation has no more steps."


def tool_call(name: str, /, **args: Any) -> ToolCall:
    """Build a tool call for a scripted step (its id is filled in when the step is replayed)."""
    return ToolCall(name=name, args=args, id=None, type="tool_call")


def turn(*calls: ToolCall, text: str = "") -> AIMessage:
    """Build a scripted step that says ``text`` and makes ``calls`` (several run in parallel)."""
    return AIMessage(content=text, tool_calls=list(calls))


class ScriptedChatModel(BaseChatModel):
    """A chat model that replays a fixed, tool-calling conversation.

    The reply to a conversation is the script's step number *n*, where *n* is the number of AI
    messages the conversation already holds. Replies therefore depend only on the conversation,
    not on call order, so separate threads replay the script independently and a thread that is
    invoked again continues where it stopped. After the last step it answers
    :data:`END_OF_SCRIPT`, which ends an agent loop.

    ``bind_tools`` is supported: a bound copy refuses to call a tool that was not bound, the way a
    real provider would, so a script cannot silently drift from the tools it is used with.

    Example:
        .. code-block:: python

            from langchain_e2b.testing import ScriptedChatModel, tool_call, turn

            model = ScriptedChatModel(
                script=[turn(tool_call("run_code", code="21 * 2")), "The answer is 42."]
            )
    """

    script: list[Any] = Field(default_factory=list)
    """The steps, in order (see :data:`Step`)."""

    bound_tools: list[str] | None = None
    """Names of the tools bound with ``bind_tools``; ``None`` when none were bound."""

    @property
    def _llm_type(self) -> str:
        return "langchain-e2b-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Return a copy that may call only ``tools`` (``tool_choice`` is accepted and ignored)."""
        names = [
            tool.name
            if isinstance(tool, BaseTool)
            else convert_to_openai_tool(tool)["function"]["name"]
            for tool in tools
        ]
        return self.model_copy(update={"bound_tools": names})

    def next_message(self, messages: Sequence[BaseMessage]) -> AIMessage:
        """Return the scripted reply to ``messages``."""
        index = sum(isinstance(message, AIMessage) for message in messages)
        if index >= len(self.script):
            return AIMessage(content=END_OF_SCRIPT)
        step = self.script[index]
        if callable(step):
            step = step(list(messages))
        message = AIMessage(content=step) if isinstance(step, str) else step.model_copy(deep=True)
        calls: list[ToolCall] = []
        for position, call in enumerate(message.tool_calls):
            if self.bound_tools is not None and call["name"] not in self.bound_tools:
                raise ValueError(
                    f"Scripted step {index} calls the tool {call['name']!r}, which is not bound "
                    f"to the model (bound: {', '.join(self.bound_tools) or 'none'})."
                )
            calls.append(
                ToolCall(
                    name=call["name"],
                    args=call["args"],
                    id=call.get("id") or f"call_{index}_{position}",
                    type="tool_call",
                )
            )
        message.tool_calls = calls
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.next_message(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # Word by word, then the tool calls, so token streaming looks like a real provider's.
        message = self.next_message(messages)
        text = message.text
        words = text.split(" ") if text else []
        for position, word in enumerate(words):
            piece = word if position == len(words) - 1 else word + " "
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        if message.tool_calls:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {
                            "name": call["name"],
                            "args": json.dumps(call["args"]),
                            "id": call["id"],
                            "index": position,
                            "type": "tool_call_chunk",
                        }
                        for position, call in enumerate(message.tool_calls)
                    ],
                )
            )


__all__ = ["END_OF_SCRIPT", "ScriptedChatModel", "Step", "tool_call", "turn"]
