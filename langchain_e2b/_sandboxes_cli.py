"""The ``demo`` and ``sandboxes list|prune`` commands of ``langchain-e2b``."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from e2b import Sandbox, SandboxQuery

from langchain_e2b.session import METADATA_TAG

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``90``, ``30s``, ``15m``, ``1h`` or ``2d``.

    Raises:
        ValueError: If ``text`` is not a duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use for example 30s, 15m, 1h or 2d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


@dataclass(frozen=True)
class TaggedSandbox:
    """One of this package's sandboxes, as the backend lists it.

    Attributes:
        sandbox_id: The sandbox id.
        template: Template id or name.
        state: ``running`` or ``paused``.
        started_at: When it started (aware datetime).
        end_at: When it expires unless it is used again.
        thread_id: The LangGraph thread it belongs to, if any.
    """

    sandbox_id: str
    template: str
    state: str
    started_at: datetime
    end_at: datetime
    thread_id: str | None

    def age(self, now: datetime | None = None) -> float:
        """Seconds since the sandbox started."""
        return ((now or datetime.now(timezone.utc)) - self.started_at).total_seconds()


def connection_from_env(
    api_url: str | None = None, sandbox_url: str | None = None
) -> dict[str, str] | None:
    """SDK connection options from the environment (``E2B_API_KEY``, ``E2B_API_URL``, ...).

    Returns ``None`` when no key is set: the embedded local runtime lives only as long as the
    process that started it, so another process has nothing to list there.
    """
    key = os.environ.get("E2B_API_KEY")
    if not key:
        return None
    options = {"api_key": key}
    api_url = api_url or os.environ.get("E2B_API_URL")
    sandbox_url = sandbox_url or os.environ.get("E2B_SANDBOX_URL")
    if api_url:
        options["api_url"] = api_url
    if sandbox_url:
        options["sandbox_url"] = sandbox_url
    return options


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def list_sandboxes(**connection: Any) -> list[TaggedSandbox]:
    """Every sandbox tagged as this package's (running or paused), oldest first.

    Args:
        **connection: SDK connection options (``api_key``, ``api_url``, ``sandbox_url``).
    """
    # Imported here so that building the command line does not load LangChain and LangGraph.
    from langchain_e2b.langgraph import THREAD_METADATA_KEY

    paginator = Sandbox.list(query=SandboxQuery(metadata=dict(METADATA_TAG)), **connection)
    found: list[TaggedSandbox] = []
    while paginator.has_next:
        for info in paginator.next_items():
            metadata = info.metadata or {}
            state = getattr(info.state, "value", info.state)
            found.append(
                TaggedSandbox(
                    sandbox_id=info.sandbox_id,
                    template=info.name or info.template_id,
                    state=str(state),
                    started_at=_aware(info.started_at),
                    end_at=_aware(info.end_at),
                    thread_id=metadata.get(THREAD_METADATA_KEY),
                )
            )
    return sorted(found, key=lambda s: s.started_at)


def prune_sandboxes(
    older_than: float, *, dry_run: bool = False, **connection: Any
) -> list[TaggedSandbox]:
    """Kill this package's sandboxes that started more than ``older_than`` seconds ago.

    Args:
        older_than: Age threshold in seconds (since the sandbox started).
        dry_run: Only return what would be killed.
        **connection: SDK connection options.

    Returns:
        The sandboxes killed (or that would be).
    """
    now = datetime.now(timezone.utc)
    doomed = [s for s in list_sandboxes(**connection) if s.age(now) > older_than]
    if not dry_run:
        for sandbox in doomed:
            Sandbox.kill(sandbox.sandbox_id, **connection)
    return doomed


def _print_table(sandboxes: Sequence[TaggedSandbox]) -> None:
    now = datetime.now(timezone.utc)
    rows = [("SANDBOX", "AGE", "EXPIRES IN", "STATE", "THREAD", "TEMPLATE")]
    for s in sandboxes:
        expires = _age((s.end_at - now).total_seconds())
        row = (s.sandbox_id, _age(s.age(now)), expires, s.state, s.thread_id or "-", s.template)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


_NO_BACKEND = (
    "E2B_API_KEY is not set, so there is nothing to list: the embedded local runtime lives only "
    "as long as the process that started it. Set E2B_API_KEY for the E2B cloud, or point "
    "E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL at a `langchain-e2b local serve` runtime."
)


def main_sandboxes(args: argparse.Namespace) -> int:
    """Run ``sandboxes list`` or ``sandboxes prune``; return the exit code."""
    connection = connection_from_env(args.api_url, args.sandbox_url)
    if connection is None:
        print(_NO_BACKEND, file=sys.stderr)
        return 0 if args.sandboxes_command == "list" else 2
    if args.sandboxes_command == "list":
        sandboxes = list_sandboxes(**connection)
        if not sandboxes:
            print("No langchain-e2b sandboxes are running.")
            return 0
        _print_table(sandboxes)
        return 0
    try:
        older_than = parse_duration(args.older_than)
    except ValueError as exc:
        print(f"error: --older-than: {exc}", file=sys.stderr)
        return 2
    pruned = prune_sandboxes(older_than, dry_run=args.dry_run, **connection)
    verb = "Would kill" if args.dry_run else "Killed"
    for sandbox in pruned:
        thread = f" (thread {sandbox.thread_id})" if sandbox.thread_id else ""
        print(f"{verb} {sandbox.sandbox_id}, started {_age(sandbox.age())} ago{thread}.")
    print(f"{verb} {len(pruned)} sandbox(es) older than {args.older_than}.")
    return 0


def main_demo(args: argparse.Namespace) -> int:
    """Run the demo; return the exit code."""
    from langchain_e2b.demo import run_demo  # loads LangChain, LangGraph: only for this command

    try:
        run_demo(model=args.model, output_dir=args.output_dir)
    except KeyboardInterrupt:
        print("\nInterrupted; the sandbox was killed.", file=sys.stderr)
        return 130
    return 0


def add_parsers(subparsers: Any) -> None:
    """Add the ``demo`` and ``sandboxes`` commands to ``subparsers`` (from ``add_subparsers``).

    Each parser sets ``handler``: call ``args.handler(args)`` and exit with what it returns.
    """
    demo = subparsers.add_parser(
        "demo",
        help="watch an agent analyse a small dataset in a sandbox",
        description=(
            "Run a ReAct agent that analyses a bundled dataset in a sandbox, streaming its "
            "output live, then save the chart and a notebook of every step. Without --model "
            "(and without a provider key in the environment) a bundled scripted chat model is "
            "used; the code runs in a real sandbox either way."
        ),
    )
    demo.add_argument(
        "--model",
        default=None,
        help="chat model as provider:name for init_chat_model, e.g. openai:gpt-4.1-mini",
    )
    demo.add_argument(
        "--output-dir",
        default="langchain-e2b-demo",
        help="where to save the chart and the notebook (default: %(default)s)",
    )
    demo.set_defaults(handler=main_demo)

    sandboxes = subparsers.add_parser(
        "sandboxes",
        help="list or prune this package's sandboxes",
        description=(
            "Sandboxes created by langchain-e2b carry the metadata tag langchain_e2b=1 (and "
            "thread_id for thread-scoped ones). The backend comes from E2B_API_KEY, "
            "E2B_API_URL and E2B_SANDBOX_URL."
        ),
    )
    sandboxes.add_argument("--api-url", default=None, help="E2B API URL (default: E2B_API_URL)")
    sandboxes.add_argument(
        "--sandbox-url", default=None, help="E2B sandbox URL (default: E2B_SANDBOX_URL)"
    )
    commands = sandboxes.add_subparsers(dest="sandboxes_command", required=True)
    commands.add_parser("list", help="show the sandboxes with their age and thread")
    prune = commands.add_parser("prune", help="kill sandboxes older than a given age")
    prune.add_argument(
        "--older-than",
        default="1h",
        help="age since start, e.g. 30m, 1h, 2d (default: %(default)s)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only show what would be killed")
    sandboxes.set_defaults(handler=main_sandboxes)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for these commands alone (``python -m langchain_e2b._sandboxes_cli``)."""
    parser = argparse.ArgumentParser(prog="langchain-e2b")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
