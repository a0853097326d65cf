"""The agent's tools called from sandbox code: one cell instead of one model turn per item.

``E2BSandboxMiddleware(code_tools=[...])`` gives the code that ``run_code`` runs a module
``agent_tools`` with a function per tool. Here the model prices 40 items with one cell that calls
``agent_tools.price`` in a loop and prints only the summary; each call is still a real LangChain
tool run (its callbacks fire under the ``run_code`` run).

    python examples/code_tools.py                      # scripted model, no key needed
    python examples/code_tools.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tools import tool

from langchain_e2b.demo import resolve_model
from langchain_e2b.langgraph import E2BSandboxMiddleware
from langchain_e2b.testing import tool_call, turn

CATALOGUE = {f"item-{n}": round(1.5 * n + 0.25, 2) for n in range(40)}


@tool
def price(item: str) -> str:
    """The price of one catalogue item, in euros (items are named item-0 to item-39)."""
    if item not in CATALOGUE:
        raise ValueError(f"unknown item {item!r}")
    return str(CATALOGUE[item])


QUESTION = "What do items item-0 to item-39 cost together, and which is the dearest?"

CELL = """\
prices = {f"item-{n}": agent_tools.price(item=f"item-{n}") for n in range(40)}
dearest = max(prices, key=prices.get)
print(f"total {sum(prices.values()):.2f} EUR, dearest {dearest} at {prices[dearest]} EUR")
"""

SCRIPT = [
    turn(tool_call("run_code", code=CELL)),
    "Together they cost 1180.00 EUR; the dearest is item-39 at 58.75 EUR.",
]


class CountTools(BaseCallbackHandler):
    """Counts tool runs by name, to show each code call is a real tool run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        name = str(serialized.get("name"))
        self.counts[name] = self.counts.get(name, 0) + 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    middleware = E2BSandboxMiddleware(code_tools=[price], cleanup="run")
    agent = create_agent(model, middleware=[middleware])
    counter = CountTools()
    config: Any = {"configurable": {"thread_id": "prices"}, "callbacks": [counter]}
    try:
        print(f"User: {QUESTION}")
        result = agent.invoke({"messages": [("user", QUESTION)]}, config)
        for message in result["messages"]:
            if message.type == "tool":
                print(f"  [{message.name}] {message.text.strip()}")
        print(f"Agent: {result['messages'][-1].text}")
        print(
            f"\nTool runs: {counter.counts} (one model turn, {counter.counts.get('price')} prices)"
        )
    finally:
        middleware.sessions.close()


if __name__ == "__main__":
    main()
