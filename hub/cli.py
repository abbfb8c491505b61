"""The ``hubbub`` command: each subcommand's module is imported only when it runs.

A subcommand is a module with ``DESCRIPTION``, ``configure(parser)`` and
``run(args) -> int``. ``serve`` and ``token`` belong to the hub; ``bot`` and
``loadtest`` to the ``clients`` package, so the SDK never loads the server and
the server never loads the load generator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("hub.serve", "run a hub node (WebSocket + HTTP on one port)"),
    "token": ("hub.token_command", "print a signed token for a user"),
    "cluster": ("hub.cluster", "run Redis and N hub nodes on loopback (local multi-node)"),
    "bot": ("clients.bots.cli", "run a bot file against a hub"),
    "loadtest": ("clients.loadtest.cli", "simulate many users against a hub and report latency"),
}
"""Subcommand name -> (module, one-line help)."""

OVERVIEW = """\
Hubbub: a real-time social hub. Clients hold WebSocket connections (subprotocol
hubbub.v1.json or hubbub.v1.msgpack), follow each other, post, reply and like,
and see their feeds change live.

commands:
{commands}

Start with `hubbub serve --dev`, then `hubbub token alice` for a token.
Run `hubbub COMMAND --help` for a command's options.
"""


def _overview() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return OVERVIEW.format(commands="\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hubbub`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_overview(), end="")
        return 0 if args else 2
    name = args[0]
    if name not in SUBCOMMANDS:
        print(f"hubbub: unknown command {name!r}\n", file=sys.stderr)
        print(_overview(), end="", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(
        prog=f"hubbub {name}",
        description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure(parser)
    return int(module.run(parser.parse_args(args[1:])))


if __name__ == "__main__":
    sys.exit(main())
