"""Helpers for the agent tests: backend queries and a model that runs the user's code."""

from __future__ import annotations

from typing import Any

from e2b import SandboxQuery
from e2b_code_interpreter import Sandbox
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_e2b.testing import ScriptedChatModel, tool_call, turn


def sandboxes_of(connection: dict[str, Any], thread: str) -> list[str]:
    """Ids of the live sandboxes tagged with ``thread``, straight from the backend."""
    paginator = Sandbox.list(query=SandboxQuery(metadata={"thread_id": thread}), **connection)
    ids: list[str] = []
    while paginator.has_next:
        ids.extend(s.sandbox_id for s in paginator.next_items())
    return ids


def _last_human(messages: list[BaseMessage]) -> str:
    return next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))


def _run_user_code(messages: list[BaseMessage]) -> AIMessage:
    return turn(tool_call("run_code", code=_last_human(messages)))


def echo_model(turns: int = 4) -> ScriptedChatModel:
    """A model that runs each user message as code, then answers "done" (``turns`` times)."""
    return ScriptedChatModel(script=[_run_user_code, "done"] * turns)


def tool_texts(result: dict[str, Any]) -> list[str]:
    """Texts of the tool messages of a graph result, oldest first."""
    return [m.text for m in result["messages"] if m.type == "tool"]
