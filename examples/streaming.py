"""Live sandbox output while the code still runs: ``stream_mode="custom"`` and ``astream_events``.

The tools send each stdout/stderr chunk as it arrives: to LangGraph's custom stream (items with
``type == "e2b_output"``) and as the LangChain custom event ``e2b_output``. Sandbox lifecycle
changes come the same way as ``e2b_sandbox``. The final ``ToolMessage`` is unchanged.

    python examples/streaming.py                         # scripted model, no key needed
    python examples/streaming.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
import time

from langchain.agents import create_agent

from langchain_e2b.demo import resolve_model
from langchain_e2b.langgraph import E2BSandboxMiddleware
from langchain_e2b.testing import tool_call, turn

TASK = (
    "In the sandbox, count down from 3 to 1, printing one line per second with a timestamp, "
    "then print 'liftoff'."
)

_COUNTDOWN = """\
import time
start = time.time()
for n in (3, 2, 1):
    print(f"{time.time() - start:4.1f}s  {n}", flush=True)
    time.sleep(1)
print("liftoff")"""

# One script step per model turn; the two runs below are separate threads, so each replays it.
SCRIPT = [turn(tool_call("run_code", code=_COUNTDOWN)), "Countdown done: 3, 2, 1, liftoff."]


def stream_custom(agent, started: float) -> None:
    """Sync: LangGraph's custom stream carries the tool's output chunks."""
    config = {"configurable": {"thread_id": "custom-stream"}}
    for mode, chunk in agent.stream(
        {"messages": [("user", TASK)]}, config, stream_mode=["custom", "updates"]
    ):
        if mode == "custom" and chunk.get("type") == "e2b_output":
            print(
                f"  [{time.monotonic() - started:5.2f}s live {chunk['stream']}] {chunk['text']!r}"
            )
        elif mode == "custom" and chunk.get("type") == "e2b_sandbox":
            print(f"  [sandbox {chunk['event']}] {chunk['message']}")
        elif mode == "updates":
            for update in chunk.values():
                for message in (update or {}).get("messages", []):
                    if message.type == "ai" and not message.tool_calls:
                        print(f"Agent: {message.text}")


async def stream_events(agent, started: float) -> None:
    """Async: the same chunks as LangChain custom events in ``astream_events``."""
    config = {"configurable": {"thread_id": "event-stream"}}
    async for event in agent.astream_events({"messages": [("user", TASK)]}, config, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == "e2b_output":
            data = event["data"]
            print(f"  [{time.monotonic() - started:5.2f}s event {data['stream']}] {data['text']!r}")
        elif event["event"] == "on_tool_end":
            print(f"  [tool {event['name']} finished]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    middleware = E2BSandboxMiddleware(cleanup="run")  # each thread's sandbox dies with its run
    agent = create_agent(model, middleware=[middleware])
    started = time.monotonic()
    print('stream_mode="custom":')
    stream_custom(agent, started)
    print("astream_events:")
    asyncio.run(stream_events(agent, started))


if __name__ == "__main__":
    main()
