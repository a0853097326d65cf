"""Data analysis: upload a CSV, let an agent analyse it with pandas, download the chart.

python examples/data_analysis.py                     # scripted model, no key needed
python examples/data_analysis.py --model openai:gpt-4.1-mini --output-dir out/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from langchain.agents import create_agent

from langchain_e2b import E2BSandboxSession, E2BSandboxToolkit
from langchain_e2b.demo import dataset_path, resolve_model
from langchain_e2b.testing import tool_call, turn

TASK = (
    "sales.csv holds weekly coffee shop sales (week_start, store, product, units, unit_price). "
    "Which product earns the most revenue in each store? Save a horizontal bar chart of revenue "
    "per product to products.png and answer in two sentences."
)

_ANALYSIS = """\
import pandas as pd
df = pd.read_csv("sales.csv")
df["revenue"] = df["units"] * df["unit_price"]
table = df.pivot_table(index="product", columns="store", values="revenue", aggfunc="sum")
print(table.idxmax().to_string())
table.round(0)"""

_CHART = """\
import matplotlib.pyplot as plt
ax = table.sum(axis=1).sort_values().plot(kind="barh", figsize=(7, 3.5), color="#4c72b0")
ax.set_xlabel("revenue over 26 weeks ($)")
ax.set_title("Revenue per product, all stores")
plt.tight_layout()
plt.savefig("products.png", dpi=110)
plt.show()"""

SCRIPT = [
    turn(tool_call("run_code", code=_ANALYSIS)),
    turn(tool_call("run_code", code=_CHART)),
    "Latte earns the most revenue in every store. The chart of revenue per product is in "
    "products.png.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="provider:name for init_chat_model")
    parser.add_argument("--output-dir", default=".", help="where to save products.png")
    args = parser.parse_args(argv)
    model, note = resolve_model(args.model, SCRIPT)
    if note:
        print(note)

    with E2BSandboxSession(timeout=120) as session:
        uploaded = session.write_file("sales.csv", Path(dataset_path()).read_bytes())
        print(f"Uploaded {uploaded}")
        tools = E2BSandboxToolkit(session=session).get_tools()
        agent = create_agent(model, tools)
        result = agent.invoke({"messages": [("user", TASK)]})
        print(f"Agent: {result['messages'][-1].text}")

        chart = Path(args.output_dir) / "products.png"
        chart.parent.mkdir(parents=True, exist_ok=True)
        chart.write_bytes(session.read_file("products.png"))
        print(f"Chart downloaded to {chart.resolve()}")


if __name__ == "__main__":
    main()
