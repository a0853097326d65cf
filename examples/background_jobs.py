"""Background jobs: start a server, read its output a piece at a time, check it, stop it.

``run_command`` with ``background=true`` returns a job id; ``job_output`` returns what the job
printed since the last look (and, with ``wait``, streams it as ``e2b_output`` events while it
waits), ``job_status`` says whether it runs or its exit code, ``job_stop`` stops it. The same
operations are on the session: ``session.jobs.start/status/output/stop`` (and ``a...``).

    python examples/background_jobs.py                      # scripted model, no key needed
    python examples/background_jobs.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler

from langchain_e2b.demo import resolve_model
from langchain_e2b.langgraph import E2BSandboxMiddleware
from langchain_e2b.testing import tool_call, turn

QUESTION = "Start a web server on port 8000 in the sandbox, request a page from it, then stop it."

SCRIPT = [
    turn(tool_call("run_command", command="python3 -u -m http.server 8000", background=True)),
    turn(tool_call("job_output", job_id="job-1", wait=1)),
    turn(tool_call("run_command", command="curl -s -o /dev/null -w '%{http_code}' localhost:8000")),
    turn(tool_call("job_output", job_id="job-1")),
    turn(tool_call("job_stop", job_id="job-1")),
    "The server answered 200 and logged the request; it is stopped now (exit code 143).",
]


class LiveOutput(BaseCallbackHandler):
    """Prints each chunk a tool streams while it runs (here: the job's output while waiting)."""

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == "e2b_output":
            print(f"    live| {data['text'].rstrip()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    middleware = E2BSandboxMiddleware(cleanup="run")
    agent = create_agent(model, middleware=[middleware])
    config: Any = {"configurable": {"thread_id": "server"}, "callbacks": [LiveOutput()]}
    try:
        print(f"User: {QUESTION}")
        result = agent.invoke({"messages": [("user", QUESTION)]}, config)
        for message in result["messages"]:
            if message.type == "tool":
                print(f"  [{message.name}] {message.text.strip()}")
        print(f"Agent: {result['messages'][-1].text}")
    finally:
        middleware.sessions.close()


if __name__ == "__main__":
    main()
