"""The ``langchain-e2b demo`` flow: an agent analyses a bundled dataset in a sandbox, live."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from langchain_e2b.middleware import E2BSandboxMiddleware
from langchain_e2b.notebook import export_notebook
from langchain_e2b.session import E2BSandboxSession
from langchain_e2b.testing import END_OF_SCRIPT, ScriptedChatModel, Step, tool_call, turn
from langchain_e2b.threads import E2BThreadSessions
from langchain_e2b.tools import OUTPUT_EVENT

# Kept importable from here: examples written before langchain_e2b.testing existed use them.
__all__ = [
    "END_OF_SCRIPT",
    "DemoResult",
    "ScriptedChatModel",
    "Step",
    "dataset_path",
    "demo_script",
    "resolve_model",
    "run_demo",
    "tool_call",
    "turn",
]


def dataset_path() -> str:
    """Path of the bundled dataset: weekly sales of three coffee shops (390 rows, CSV)."""
    return str(resources.files("langchain_e2b") / "data" / "coffee_sales.csv")


# A provider's key in the environment -> the model the demo uses with it.
_ENV_MODELS = (
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5", "langchain_anthropic"),
    ("OPENAI_API_KEY", "openai:gpt-4.1-mini", "langchain_openai"),
    ("GOOGLE_API_KEY", "google_genai:gemini-2.5-flash", "langchain_google_genai"),
)


def resolve_model(
    spec: str | None, script: list[Any], *, from_env: bool = False
) -> tuple[BaseChatModel, str | None]:
    """Pick the chat model for an example or the demo.

    Args:
        spec: ``provider:name`` for ``init_chat_model``, or ``None``.
        script: The steps the scripted model replays when no real model is used.
        from_env: Also pick a provider from its API key in the environment (when its
            LangChain integration is installed).

    Returns:
        The model, and ``None`` for a real model or a sentence saying the scripted model is used.
    """
    spec = spec or os.environ.get("LANGCHAIN_E2B_MODEL") or None
    reason = "no model was given (--model provider:name)"
    if spec is None and from_env:
        import importlib.util

        for variable, candidate, package in _ENV_MODELS:
            if os.environ.get(variable):
                if importlib.util.find_spec(package) is not None:
                    spec = candidate
                    break
                reason = f"{variable} is set but {package} is not installed"
    if spec is not None:
        from langchain.chat_models import init_chat_model

        return init_chat_model(spec), None
    note = f"Using the bundled scripted chat model: {reason}; it replays a fixed conversation."
    return ScriptedChatModel(script=script), note


# --- the demo ------------------------------------------------------------------------------------

SANDBOX_DATASET = "data/coffee_sales.csv"
"""Where the dataset is uploaded, relative to the sandbox's working directory."""
CHART_FILE = "revenue_by_month.png"
THREAD_ID = "langchain-e2b-demo"

TASK = (
    f"The file {SANDBOX_DATASET} (in your working directory) holds 26 weeks of sales of three "
    "coffee shops: one row per week, store and product, with the columns week_start, store, "
    "product, units and unit_price. Load it with pandas and inspect it, compute the monthly "
    f"revenue of each store, plot it as a chart saved to {CHART_FILE} (and show it), then "
    "summarise the main findings in a few sentences with the key numbers."
)

_LOAD = """\
import pandas as pd

df = pd.read_csv("data/coffee_sales.csv")
print(f"{len(df)} rows x {len(df.columns)} columns")
df.head()"""

_INSPECT = """\
print(df.dtypes, end="\\n\\n")
print("stores:  ", ", ".join(df["store"].unique()))
print("products:", ", ".join(df["product"].unique()))
print("weeks:   ", df["week_start"].min(), "to", df["week_start"].max())
print("missing values:", int(df.isna().sum().sum()))"""

_MONTHLY_FIRST_TRY = """\
df["revenue"] = df["units"] * df["unit_price"]
monthly = df.groupby([df["week_start"].dt.to_period("M"), "store"])["revenue"].sum().unstack()
monthly.round(0)"""

_MONTHLY_FIXED = """\
df["week_start"] = pd.to_datetime(df["week_start"])
monthly = df.groupby([df["week_start"].dt.to_period("M"), "store"])["revenue"].sum().unstack()
monthly.round(0)"""

_PLOT = f"""\
import matplotlib.pyplot as plt

ax = monthly.plot(kind="bar", figsize=(9, 4.5), width=0.8, title="Monthly revenue by store")
ax.set_xlabel("month")
ax.set_ylabel("revenue ($)")
ax.set_ylim(0, monthly.to_numpy().max() * 1.2)
ax.legend(title="store", ncols=3, loc="upper center")
plt.xticks(rotation=0)
plt.tight_layout()
plt.savefig("{CHART_FILE}", dpi=120)
plt.show()"""

_FINDINGS = """\
stores = df.groupby("store")["revenue"].sum().sort_values(ascending=False)
products = df.groupby("product")["revenue"].sum().sort_values(ascending=False)
campus = monthly["Campus"]
cold = df[df["product"] == "Cold Brew"].groupby(df["week_start"].dt.month)["units"].mean()
print(f"total_revenue={df['revenue'].sum():,.0f}")
print(f"top_store={stores.index[0]}")
print(f"top_store_revenue={stores.iloc[0]:,.0f}")
print(f"top_store_share={stores.iloc[0] / stores.sum():.0%}")
print(f"top_product={products.index[0]}")
print(f"campus_low_month={campus.idxmin().strftime('%B')}")
print(f"campus_low_drop={1 - campus.min() / campus.drop(campus.idxmin()).mean():.0%}")
print(f"cold_brew_change={cold.iloc[-1] / cold.iloc[0] - 1:+.0%}")"""


def _findings(messages: list[BaseMessage]) -> str:
    """The scripted summary, built from the numbers the sandbox actually printed."""
    facts: dict[str, str] = {}
    for message in messages:
        if message.type == "tool":
            for line in message.text.splitlines():
                key, sep, value = line.partition("=")
                if sep and key.isidentifier():
                    facts[key] = value.strip()
    if "total_revenue" not in facts:
        return "I could not compute the findings; see the tool output above."
    trend = (
        "sells more as the weather warms"
        if facts["cold_brew_change"].startswith("+")
        else "does not pick up in the warmer months"
    )
    return (
        f"Over the 26 weeks the three shops took ${facts['total_revenue']} in total. "
        f"{facts['top_store']} leads with ${facts['top_store_revenue']} "
        f"({facts['top_store_share']} of revenue), and {facts['top_product']} is the best-selling "
        f"product by revenue. Campus has a clear dip in {facts['campus_low_month']} (about "
        f"{facts['campus_low_drop']} below its other months, likely the spring break). Cold "
        f"Brew {trend}: {facts['cold_brew_change']} units per week from January to June. "
        f"The chart is saved as {CHART_FILE}."
    )


def demo_script() -> list[Any]:
    """The conversation the scripted model replays in the demo (one step per model turn)."""
    return [
        turn(tool_call("run_code", code=_LOAD), text="Let me load the dataset first."),
        turn(tool_call("run_code", code=_INSPECT), text="Now a closer look at its columns."),
        turn(
            tool_call("run_code", code=_MONTHLY_FIRST_TRY),
            text="Next, revenue per store and month.",
        ),
        turn(
            tool_call("run_code", code=_MONTHLY_FIXED),
            text="week_start was read as text, not dates: I'll parse it and try again.",
        ),
        turn(tool_call("run_code", code=_PLOT), text="Now the chart."),
        turn(tool_call("run_code", code=_FINDINGS), text="A few numbers for the summary."),
        _findings,
    ]


class _Display:
    """Live terminal view of the agent: one block per tool call with its output as it arrives."""

    def __init__(self, out: TextIO, *, total_steps: int | None) -> None:
        self.out = out
        self.total_steps = total_steps
        self.color = bool(getattr(out, "isatty", lambda: False)())
        self.step = 0
        self.started = time.monotonic()
        self.step_started = self.started
        self.at_line_start = True
        self.errors = 0

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def line(self, text: str = "", *, style: str | None = None) -> None:
        self._end_output()
        self.out.write((self._paint(text, style) if style else text) + "\n")
        self.out.flush()

    def _end_output(self) -> None:
        if not self.at_line_start:
            self.out.write("\n")
            self.at_line_start = True

    def model_message(self, message: AIMessage) -> None:
        if message.text.strip() and message.tool_calls:
            self.line(f"Agent: {message.text.strip()}", style="36")
        for call in message.tool_calls:
            self.step += 1
            self.step_started = time.monotonic()
            of = f"/{self.total_steps}" if self.total_steps else ""
            elapsed = self.step_started - self.started
            self.line()
            self.line(f"[step {self.step}{of}] {call['name']}  ({elapsed:.1f}s)", style="1")
            source = call["args"].get("code") or call["args"].get("command") or ""
            if not source:
                source = json.dumps(call["args"])[:400]
            for code_line in str(source).splitlines():
                self.line(f"  | {code_line}", style="2")

    def output(self, stream: str, text: str) -> None:
        # Chunks arrive with arbitrary boundaries: prefix each new line as it starts.
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                self.out.write(self._paint("  > ", "31" if stream == "stderr" else "32"))
            self.out.write(piece.rstrip("\n") if piece.endswith("\n") else piece)
            if piece.endswith("\n"):
                self.out.write("\n")
                self.at_line_start = True
            else:
                self.at_line_start = False
        self.out.flush()

    def tool_message(self, message: ToolMessage) -> None:
        artifact = message.artifact if isinstance(message.artifact, dict) else {}
        took = time.monotonic() - self.step_started
        for result in artifact.get("results") or []:
            data = result.get("data") or {}
            if result.get("is_main_result") and isinstance(data.get("text/plain"), str):
                lines = data["text/plain"].splitlines()
                for value_line in lines[:14]:
                    self.line(f"  = {value_line}")
                if len(lines) > 14:
                    self.line(f"  = ... ({len(lines) - 14} more lines)")
            elif "image/png" in data or "image/jpeg" in data:
                self.line("  [chart image returned to the model]", style="35")
        error = artifact.get("error")
        if message.status == "error" or error:
            self.errors += 1
            what = f"{error['name']}: {error['value']}" if error else message.text[:300]
            self.line(f"  x error after {took:.1f}s: {what}", style="31")
        else:
            self.line(f"  ok ({took:.1f}s)", style="32")


@dataclass
class DemoResult:
    """What the demo produced.

    Attributes:
        summary: The agent's final answer.
        notebook: The exported notebook of every cell the agent ran.
        chart: The chart PNG, if the agent made one.
        steps: Tool calls the agent made.
        errors: Tool calls that ended in an error.
        scripted: Whether the bundled scripted model was used.
    """

    summary: str
    notebook: Path
    chart: Path | None
    steps: int
    errors: int
    scripted: bool


def _backend_label(session: E2BSandboxSession) -> str:
    api_url = session.connection_options().get("api_url") or os.environ.get("E2B_API_URL")
    if not api_url:
        return "E2B cloud (E2B_API_KEY)"
    local = api_url.startswith(("http://127.", "http://localhost", "http://[::1]"))
    return f"{'local E2B-compatible runtime' if local else 'E2B'} at {api_url}"


def _chart_bytes(session: E2BSandboxSession) -> bytes | None:
    try:
        return session.read_file(CHART_FILE)
    except FileNotFoundError:
        pass
    for cell in reversed(session.history):
        for result in reversed(cell.results):
            png = (result.get("data") or {}).get("image/png")
            if isinstance(png, str):
                return base64.b64decode(png)
    return None


def run_demo(
    *,
    model: str | None = None,
    output_dir: str | Path = "langchain-e2b-demo",
    out: TextIO | None = None,
    **session_options: Any,
) -> DemoResult:
    """Run the demo: an agent analyses the bundled dataset in a sandbox, step by step.

    The agent loads and inspects the data, hits an error and fixes it, plots a chart and
    summarises. Sandbox output is streamed to ``out`` as it arrives; the chart and a notebook of
    every executed cell are saved to ``output_dir``.

    Args:
        model: ``provider:name`` of a chat model (``init_chat_model``). Without it a provider is
            picked from its API key in the environment, else the bundled scripted model is used.
        output_dir: Where the chart and the notebook are written.
        out: Where the live view goes; standard output by default.
        **session_options: Passed to the sandbox sessions (for example ``api_key``, ``api_url``,
            ``sandbox_url``); by default ``E2B_API_KEY`` or the embedded local runtime is used.

    Returns:
        What the demo produced.
    """
    stream = out if out is not None else sys.stdout
    script = demo_script()
    chat_model, note = resolve_model(model, script, from_env=True)
    display = _Display(stream, total_steps=len(script) - 1 if note else None)
    display.line(note or f"Using the chat model {model or os.environ.get('LANGCHAIN_E2B_MODEL')}.")
    target = Path(output_dir).resolve()

    config: RunnableConfig = {"configurable": {"thread_id": THREAD_ID}, "recursion_limit": 60}
    with E2BThreadSessions(**session_options) as sessions:
        session = sessions.get(config)
        display.line(f"Sandbox backend: {_backend_label(session)}. Starting a sandbox...")
        with open(dataset_path(), "rb") as source:
            uploaded = session.write_file(SANDBOX_DATASET, source.read())
        display.line(f"Sandbox {session.sandbox_id} is ready; uploaded the dataset to {uploaded}.")
        display.line()
        display.line(f"Task: {TASK}", style="1")
        agent = create_agent(chat_model, middleware=[E2BSandboxMiddleware(sessions)])
        summary = ""
        for mode, chunk in agent.stream(
            {"messages": [HumanMessage(TASK)]}, config, stream_mode=["updates", "custom"]
        ):
            if mode == "custom":
                if isinstance(chunk, dict) and chunk.get("type") == OUTPUT_EVENT:
                    display.output(str(chunk.get("stream")), str(chunk.get("text", "")))
                continue
            updates: dict[str, Any] = chunk if isinstance(chunk, dict) else {}
            for update in updates.values():
                messages = update.get("messages", []) if isinstance(update, dict) else []
                for message in messages:
                    if isinstance(message, AIMessage):
                        display.model_message(message)
                        if not message.tool_calls:
                            summary = message.text
                    elif isinstance(message, ToolMessage):
                        display.tool_message(message)
        display.line()
        display.line("Summary", style="1")
        display.line(summary or "(the agent gave no summary)")
        target.mkdir(parents=True, exist_ok=True)
        chart_path: Path | None = None
        chart = _chart_bytes(session)
        if chart is not None:
            chart_path = target / CHART_FILE
            chart_path.write_bytes(chart)
        notebook = export_notebook(
            session, target / "analysis.ipynb", title="langchain-e2b demo: coffee shop sales"
        )
    display.line()
    elapsed = time.monotonic() - display.started
    display.line(
        f"Done in {elapsed:.1f}s: {display.step} steps, {display.errors} error(s) hit and handled."
    )
    display.line(f"Chart:    {chart_path}" if chart_path else "Chart:    (none was produced)")
    display.line(f"Notebook: {notebook}")
    return DemoResult(
        summary=summary,
        notebook=notebook,
        chart=chart_path,
        steps=display.step,
        errors=display.errors,
        scripted=note is not None,
    )
