"""LangGraph ``create_react_agent`` with the ``E2BSandboxToolkit``: files, commands and code.

The agent writes a script with ``write_file``, runs it with ``run_command``, fixes it with
``edit_file`` and runs it again. The toolkit owns one sandbox and kills it when closed.

    python examples/react_agent.py                       # scripted model, no key needed
    python examples/react_agent.py --model anthropic:claude-sonnet-4-5
"""

from __future__ import annotations

import argparse
import warnings

from langgraph.prebuilt import create_react_agent

from langchain_e2b import E2BSandboxToolkit
from langchain_e2b.demo import resolve_model
from langchain_e2b.testing import tool_call, turn

TASK = (
    "Write a Python script primes.py that prints the prime numbers below the number given as "
    "its first argument, run it for 50, and fix it if the output is wrong."
)

_SCRIPT_V1 = """\
import sys

limit = int(sys.argv[1])
primes = [n for n in range(limit) if all(n % d for d in range(2, n))]
print(*primes)
"""

SCRIPT = [
    turn(tool_call("write_file", path="primes.py", content=_SCRIPT_V1)),
    turn(tool_call("run_command", command="python3 primes.py 50")),
    turn(
        tool_call(
            "edit_file",
            path="primes.py",
            old_text="for n in range(limit)",
            new_text="for n in range(2, limit)",
        ),
        text="0 and 1 are not primes; the range must start at 2.",
    ),
    turn(tool_call("run_command", command="python3 primes.py 50")),
    "primes.py now prints the 15 primes below 50, from 2 to 47.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    with E2BSandboxToolkit() as toolkit:
        with warnings.catch_warnings():
            # create_react_agent still works in LangGraph 1.x; it now points to create_agent.
            warnings.simplefilter("ignore", DeprecationWarning)
            agent = create_react_agent(model, toolkit.get_tools())
        for update in agent.stream({"messages": [("user", TASK)]}, stream_mode="updates"):
            for node in update.values():
                for message in node["messages"]:
                    for call in getattr(message, "tool_calls", []):
                        print(f"-> {call['name']}({', '.join(f'{k}=...' for k in call['args'])})")
                    if message.type == "tool":
                        print("   " + message.text.strip().replace("\n", "\n   "))
                    elif not getattr(message, "tool_calls", None):
                        print(f"Agent: {message.text}")


if __name__ == "__main__":
    main()
