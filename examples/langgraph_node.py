"""A custom LangGraph ``StateGraph`` whose node runs model-written code through the session.

No tool calling: one node asks the model for code, the next runs it in the thread's sandbox
with ``E2BThreadSessions`` (the session API directly), and a last node turns the output into an
answer. Each thread gets its own sandbox; the graph's store remembers which, so another process
with the same store and a shared backend reconnects to it.

A thread's sandbox can go away (its idle timeout, a kill, a backend restart); the next call gets
a new one, and its result carries a notice that the earlier state is gone. ``result.render()``
puts that notice at the head of the text, so the model reading the output cannot miss it. The
example kills the thread's sandbox and runs the graph again to show it.

    python examples/langgraph_node.py                    # scripted model, no key needed
    python examples/langgraph_node.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import re
from typing import TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore

from langchain_e2b.demo import resolve_model
from langchain_e2b.langgraph import E2BThreadSessions

QUESTION = "What is the 10,001st prime number?"

SCRIPT = [
    "```python\n"
    "import math\n"
    "def nth_prime(n):\n"
    "    limit = int(n * (math.log(n) + math.log(math.log(n)))) + 10\n"
    "    sieve = bytearray([1]) * limit\n"
    "    sieve[0:2] = b'\\x00\\x00'\n"
    "    for i in range(2, int(limit ** 0.5) + 1):\n"
    "        if sieve[i]:\n"
    "            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))\n"
    "    return [i for i, is_prime in enumerate(sieve) if is_prime][n - 1]\n"
    "print(nth_prime(10_001))\n"
    "```",
    "The 10,001st prime number is 104743.",
]


class State(TypedDict, total=False):
    question: str
    code: str
    output: str
    answer: str


def build_graph(model: BaseChatModel, sessions: E2BThreadSessions) -> StateGraph:
    def write_code(state: State) -> State:
        reply = model.invoke(
            [
                ("system", "Answer with one Python code block that prints the answer."),
                ("user", state["question"]),
            ]
        )
        match = re.search(r"```(?:python)?\n(.*?)```", reply.text, re.DOTALL)
        return {"code": match.group(1) if match else reply.text}

    def run_code(state: State, config: RunnableConfig) -> State:
        session = sessions.get(config)  # the sandbox of this thread
        result = session.run_code(state["code"], timeout=60)
        # The text the model should read: a restart notice first, then output, value and error.
        return {"output": result.render().strip()}

    def answer(state: State) -> State:
        reply = model.invoke(
            [
                ("user", state["question"]),
                ("ai", f"```python\n{state['code']}```"),
                ("user", f"The code printed:\n{state['output']}\nAnswer in one sentence."),
            ]
        )
        return {"answer": reply.text}

    graph = StateGraph(State)
    graph.add_node("write_code", write_code)
    graph.add_node("run_code", run_code)
    graph.add_node("answer", answer)
    graph.add_edge(START, "write_code")
    graph.add_edge("write_code", "run_code")
    graph.add_edge("run_code", "answer")
    graph.add_edge("answer", END)
    return graph


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    store = InMemoryStore()
    with E2BThreadSessions(idle_timeout=300) as sessions:
        app = build_graph(model, sessions).compile(store=store)
        config: RunnableConfig = {"configurable": {"thread_id": "primes"}}
        result = app.invoke({"question": QUESTION}, config)
        print(f"Question: {QUESTION}")
        print(f"Sandbox output: {result['output']}")
        print(f"Answer: {result['answer']}")
        record = store.get(("langchain_e2b", "threads"), "primes")
        print(f"The store maps thread 'primes' to sandbox {record.value['sandbox_id']}.")

        # The sandbox goes away (here: killed; usually: idle too long). The thread's next run
        # gets a new sandbox, and the output the model reads starts by saying so.
        sessions.close_thread("primes")
        again = app.invoke({"question": QUESTION}, config)
        print(f"After the sandbox was killed, the model reads:\n{again['output']}")


if __name__ == "__main__":
    main()
