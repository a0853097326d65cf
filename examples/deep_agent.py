"""Deep Agents on an E2B sandbox: files, shell and a Python kernel that keeps its state.

``E2BSandbox`` is the deep agent's backend: its file tools (``write_file``, ``edit_file``,
``read_file``, ...) and ``execute`` work in one sandbox, on the local runtime when ``E2B_API_KEY``
is not set. ``E2BCodeMiddleware`` adds ``run_code`` on that same sandbox: a Jupyter kernel whose
variables outlive each call and whose charts come back to the model as images.

    python examples/deep_agent.py                      # scripted model, no key needed
    python examples/deep_agent.py --model anthropic:claude-sonnet-4-5
"""

from __future__ import annotations

import argparse

from deepagents import create_deep_agent

from langchain_e2b.deepagents import E2BCodeMiddleware, E2BSandbox
from langchain_e2b.demo import resolve_model
from langchain_e2b.testing import tool_call, turn
from langchain_e2b.tools import OUTPUT_EVENT

TASK = (
    "Write /home/user/primes.py printing the primes below 50 and run it; then make it go up to "
    "60, run it again, load its output in Python, keep the primes in a variable and plot their "
    "gaps."
)
PROGRAM = "print(*[n for n in range(2, 50) if all(n % d for d in range(2, n))])\n"
CHART = (
    "import matplotlib.pyplot as plt\n"
    "plt.bar(range(len(gaps)), gaps)\nplt.title('gaps between primes below 50')\nplt.show()"
)
SCRIPT = [
    turn(tool_call("write_file", file_path="/home/user/primes.py", content=PROGRAM)),
    turn(tool_call("execute", command="python /home/user/primes.py > /home/user/primes.txt")),
    turn(
        tool_call("edit_file", file_path="/home/user/primes.py", old_string="50", new_string="60")
    ),
    turn(tool_call("execute", command="python /home/user/primes.py | tee /home/user/primes.txt")),
    turn(
        tool_call("run_code", code="primes = [int(p) for p in open('primes.txt').read().split()]")
    ),
    turn(
        tool_call("run_code", code="gaps = [b - a for a, b in zip(primes, primes[1:])]\nmax(gaps)")
    ),
    turn(tool_call("run_code", code=CHART)),
    "The primes below 60 are in /home/user/primes.txt; the largest gap between them is 6.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    with E2BSandbox() as backend:  # the sandbox is killed when the block ends
        agent = create_deep_agent(
            model=model, backend=backend, middleware=[E2BCodeMiddleware(backend)]
        )
        config = {"configurable": {"thread_id": "primes"}}
        print(f"User: {TASK}")
        for mode, chunk in agent.stream(
            {"messages": [("user", TASK)]}, config, stream_mode=["custom", "updates"]
        ):
            if mode == "custom" and chunk.get("type") == OUTPUT_EVENT:
                print(f"  [live {chunk['stream']}] {chunk['text']!r}")
            elif mode == "updates":
                for update in chunk.values():
                    for message in (update or {}).get("messages", []):
                        if message.type == "tool":
                            images = sum(
                                isinstance(b, dict) and b.get("type") == "image"
                                for b in (
                                    message.content if isinstance(message.content, list) else []
                                )
                            )
                            text = message.text.strip().replace("\n", "\n    ")
                            extra = f" (+{images} image)" if images else ""
                            print(f"  [{message.name}] {text}{extra}")
                        elif message.type == "ai" and message.text:
                            print(f"Agent: {message.text}")
        print(f"\nEverything ran in sandbox {backend.id}.")


if __name__ == "__main__":
    main()
