"""The ``langchain-e2b`` command (also ``python -m langchain_e2b``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    from langchain_e2b.local import serve  # the local extra is only needed for this command

    serve(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        allow_internet=args.allow_internet,
        pool=args.pool,
        data_dir=args.data_dir,
        unsafe_no_isolation=args.unsafe_no_isolation,
    )
    return 0


def _add_local(commands: Any) -> None:
    local = commands.add_parser("local", help="the local E2B-compatible runtime")
    actions = local.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the runtime in the foreground and print the E2B_* settings to use it",
        description=(
            "Serve the local E2B-compatible runtime until Ctrl-C. The unmodified E2B SDKs use it "
            "with the printed E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    serve.add_argument("--api-key", default=None, help="API key to require (default: random)")
    serve.add_argument(
        "--allow-internet", action="store_true", help="let sandboxes reach the network"
    )
    serve.add_argument("--pool", type=int, default=2, help="warm sandboxes kept ready (default 2)")
    serve.add_argument("--data-dir", default=None, help="where sandboxes live (default: a tempdir)")
    serve.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="run sandboxes without bubblewrap: NO ISOLATION, for debugging only",
    )
    serve.set_defaults(handler=_serve)


# Each entry adds top-level subcommands and sets ``handler`` on their parsers.
def _add_agent_commands(commands: Any) -> None:
    from langchain_e2b._sandboxes_cli import add_parsers

    add_parsers(commands)


_COMMANDS: list[Callable[[Any], None]] = [_add_local, _add_agent_commands]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``langchain-e2b`` command."""
    parser = argparse.ArgumentParser(
        prog="langchain-e2b",
        description="LangChain tools that run code in E2B sandboxes, and a local E2B runtime.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
