"""LangChain v1 ``create_agent`` with ``E2BSandboxMiddleware``: one sandbox per conversation thread.

The middleware adds the sandbox tools and a system-prompt section about the sandbox, and gives
each thread its own sandbox, so the second question can use a variable the first one created.

    python examples/create_agent.py                      # scripted model, no key needed
    python examples/create_agent.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse

from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from langchain_e2b.demo import resolve_model
from langchain_e2b.langgraph import E2BSandboxMiddleware
from langchain_e2b.testing import tool_call, turn

QUESTIONS = [
    "Compute the first 30 Fibonacci numbers in the sandbox and keep them in a variable `fib`.",
    "How many of those numbers are even? Use the variable from before.",
]

SCRIPT = [
    turn(
        tool_call(
            "run_code",
            code="fib = [0, 1]\nwhile len(fib) < 30:\n    fib.append(fib[-1] + fib[-2])\nfib[-5:]",
        )
    ),
    "`fib` now holds the first 30 Fibonacci numbers; the last one is 514229.",
    turn(tool_call("run_code", code="sum(1 for n in fib if n % 2 == 0)")),
    "10 of the first 30 Fibonacci numbers are even (every third one).",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    middleware = E2BSandboxMiddleware(cleanup="idle", idle_timeout=300)
    agent = create_agent(model, middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "fibonacci"}}
    try:
        for question in QUESTIONS:
            print(f"\nUser: {question}")
            result = agent.invoke({"messages": [("user", question)]}, config)
            for message in result["messages"][-3:]:
                if message.type == "tool":
                    print(f"  [{message.name}] {message.text.strip()}")
            print(f"Agent: {result['messages'][-1].text}")
        session = middleware.sessions.session_for("fibonacci")
        print(f"\nBoth answers came from sandbox {session.sandbox_id if session else '?'}.")
    finally:
        middleware.sessions.close()  # kill the thread's sandbox now rather than at idle timeout


if __name__ == "__main__":
    main()
