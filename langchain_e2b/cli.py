"""The ``langchain-e2b`` command (also ``python -m langchain_e2b``): one parser, three commands.

- ``local serve``: the local E2B-compatible runtime in the foreground.
- ``demo``: an agent analysing a small dataset in a sandbox.
- ``sandboxes list|prune``: this package's sandboxes on the configured backend.

Each command imports what it needs when it runs, so ``local serve`` loads no LangChain.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

Handler = Callable[[argparse.Namespace], int]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNIT_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``90``, ``30s``, ``15m``, ``1h`` or ``2d``.

    Raises:
        ValueError: If ``text`` is not a duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use for example 30s, 15m, 1h or 2d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_size(text: str) -> int:
    """Bytes in ``text`` such as ``512M``, ``2G``, ``1.5GiB`` or ``1048576`` (binary units).

    Raises:
        ValueError: If ``text`` is not a size.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (use for example 512M, 2G or 1.5GiB)")
    return int(float(match.group(1)) * _UNIT_BYTES[match.group(2).lower()])


def _argument(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """Wrap a parser so argparse reports its message (argparse hides a ValueError's text)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be more than 0, got {text!r}")
        return value

    convert.__name__ = name
    return convert


# -- local serve --------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    # The local extra is only needed for this command.
    from langchain_e2b.local import IsolationUnavailableError, serve

    # Options map one-to-one onto serve()'s keyword arguments.
    options = {k: v for k, v in vars(args).items() if k not in ("command", "action", "handler")}
    try:
        serve(**options)
    except ValueError as exc:  # bad settings, such as an unreadable --api-key-file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except IsolationUnavailableError as exc:
        print(f"error: the local runtime cannot isolate sandboxes here: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_local(commands: Any) -> None:
    local = commands.add_parser("local", help="the local E2B-compatible runtime")
    actions = local.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the runtime in the foreground and print the E2B_* settings to use it",
        description=(
            "Serve the local E2B-compatible runtime until Ctrl-C or SIGTERM. The unmodified E2B "
            "SDKs use it with the printed E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    serve.add_argument(
        "--api-key",
        default=None,
        help=(
            "API key to require. A key on the command line is visible to every local user "
            "(ps); prefer --api-key-file or E2B_API_KEY in the environment. Default: "
            "--api-key-file, else E2B_API_KEY, else a random key"
        ),
    )
    serve.add_argument(
        "--api-key-file",
        default=None,
        metavar="PATH",
        help="read the API key from this file (its first line)",
    )
    serve.add_argument(
        "--allow-internet", action="store_true", help="let sandboxes reach the network"
    )
    serve.add_argument("--pool", type=int, default=2, help="warm sandboxes kept ready (default 2)")
    serve.add_argument("--data-dir", default=None, help="where sandboxes live (default: a tempdir)")
    limits = serve.add_argument_group("per-sandbox limits")
    for flag, parse, text in (
        ("--memory", parse_size, "memory of all its processes together, e.g. 512M (default 2G)"),
        ("--cpus", float, "CPU share in cores, e.g. 0.5 (default 2)"),
        ("--processes", int, "processes and threads (default 512)"),
        ("--disk", parse_size, "size of the sandbox's writable files, all paths (default 1G)"),
    ):
        limits.add_argument(flag, type=_argument(parse, flag[2:]), default=None, help=text)
    serve.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="run sandboxes without bubblewrap: NO ISOLATION, for debugging only",
    )
    serve.set_defaults(handler=_serve)


# -- demo ---------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from langchain_e2b.demo import run_demo  # loads LangChain, LangGraph: only for this command

    try:
        run_demo(model=args.model, output_dir=args.output_dir)
    except KeyboardInterrupt:
        print("\nInterrupted; the sandbox was killed.", file=sys.stderr)
        return 130
    return 0


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
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
    demo.set_defaults(handler=_demo)


# -- sandboxes list | prune ---------------------------------------------------------------------


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
    if not os.environ.get("E2B_API_KEY"):
        return None
    from langchain_e2b._backend import resolve_backend

    return dict(resolve_backend(None, api_url, sandbox_url).options)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def list_sandboxes(**connection: Any) -> list[TaggedSandbox]:
    """Every sandbox tagged as this package's (running or paused), oldest first.

    Args:
        **connection: SDK connection options (``api_key``, ``api_url``, ``sandbox_url``).
    """
    from e2b import Sandbox, SandboxQuery

    from langchain_e2b.session import METADATA_TAG
    from langchain_e2b.threads import THREAD_METADATA_KEY

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
    from e2b import Sandbox

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


NOTHING_CONFIGURED = 2
"""Exit code of ``sandboxes list`` and ``prune`` when no backend is configured."""

_NO_BACKEND = (
    "E2B_API_KEY is not set, so there is no backend to look at: the embedded local runtime lives "
    "only as long as the process that started it. Set E2B_API_KEY for the E2B cloud, or point "
    "E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL at a `langchain-e2b local serve` runtime."
)


def _sandboxes(args: argparse.Namespace) -> int:
    connection = connection_from_env(args.api_url, args.sandbox_url)
    if connection is None:
        print(_NO_BACKEND, file=sys.stderr)
        return NOTHING_CONFIGURED
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


def _add_sandboxes(commands: Any) -> None:
    sandboxes = commands.add_parser(
        "sandboxes",
        help="list or prune this package's sandboxes",
        description=(
            "Sandboxes created by langchain-e2b carry the metadata tag langchain_e2b=1 (and "
            "thread_id for thread-scoped ones). The backend comes from E2B_API_KEY, "
            "E2B_API_URL and E2B_SANDBOX_URL; without E2B_API_KEY both commands exit with "
            f"code {NOTHING_CONFIGURED}."
        ),
    )
    sandboxes.add_argument("--api-url", default=None, help="E2B API URL (default: E2B_API_URL)")
    sandboxes.add_argument(
        "--sandbox-url", default=None, help="E2B sandbox URL (default: E2B_SANDBOX_URL)"
    )
    actions = sandboxes.add_subparsers(dest="sandboxes_command", required=True)
    actions.add_parser("list", help="show the sandboxes with their age and thread")
    prune = actions.add_parser("prune", help="kill sandboxes older than a given age")
    prune.add_argument(
        "--older-than",
        default="1h",
        help="age since start, e.g. 30m, 1h, 2d (default: %(default)s)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only show what would be killed")
    sandboxes.set_defaults(handler=_sandboxes)


# -- the command --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``langchain-e2b`` command."""
    parser = argparse.ArgumentParser(
        prog="langchain-e2b",
        description="LangChain tools that run code in E2B sandboxes, and a local E2B runtime.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_local(commands)
    _add_demo(commands)
    _add_sandboxes(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
