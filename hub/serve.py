"""``hubbub serve``: run a node in the foreground until SIGTERM or SIGINT, then drain."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal

from hub.backends.base import BackendUnavailable
from hub.config import add_arguments, settings_from_args
from hub.node import Node

__all__ = ["DESCRIPTION", "GC_THRESHOLDS", "configure", "run"]

GC_THRESHOLDS = (50_000, 20, 10)
"""Allocations between young collections, and the rarer older ones (CPython: 700, 10, 10).

A full collection walks every tracked object: ~60 per connection, ~0.4 s at 10,000
connections, a stall every live event waits out. With the defaults, short-lived objects
(a ping's task, a request's coroutine) caught alive by the frequent young collections
were promoted until full collections came every few seconds under load; with these, they
die young. The oldest threshold keeps CPython's 10, so a full collection still comes
whenever long-lived objects grew by a quarter: closed connections' cyclic garbage stays
bounded by that, as with the defaults."""

DESCRIPTION = """\
Run a hub node: WebSocket and HTTP (/healthz, /readyz, /metrics) on one port,
data in an embedded SQLite store in the data directory (no other setup).
With --tls-cert and --tls-key it serves wss:// and https:// instead.

Every option can also be set with the HUBBUB_* variable named in its help;
a flag wins over the variable. SIGTERM drains the node: clients get a notice and
close code 4000, and reconnect and resume.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``serve``'s options."""
    add_arguments(parser)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much the node logs [default info]",
    )


async def _serve(args: argparse.Namespace) -> None:
    settings = settings_from_args(args)
    try:
        node = await Node.start(settings)
    except (BackendUnavailable, ValueError, OSError) as exc:
        raise SystemExit(f"hubbub: {exc}") from None
    base = f"{settings.host}:{node.port}"
    store = (
        f"Redis{' Cluster' if settings.redis_cluster else ''} at"
        f" {settings.redis_url.rsplit('@', 1)[-1]}"  # never print a password
        if settings.redis_url
        else f"data in {settings.data_dir.resolve()}"
    )
    secure = "s" if settings.tls_cert is not None else ""
    print(f"hubbub: listening on ws{secure}://{base}/ ({store})", flush=True)
    if settings.metrics_address is not None:
        host = settings.metrics_address[0]
        host = f"[{host}]" if ":" in host else host
        print(f"hubbub: metrics at http{secure}://{host}:{node.metrics_port}/metrics", flush=True)
    if settings.demo:
        print(f"hubbub: demo app: open http{secure}://{base}/ in a browser", flush=True)
    if settings.dev:
        print(
            f"hubbub: dev mode: a token: curl 'http{secure}://{base}/dev/token?user=alice'",
            flush=True,
        )
    else:
        print(
            f"hubbub: a token: hubbub token alice --data-dir {settings.data_dir}"
            + (" --secret ..." if settings.secret else ""),
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("hubbub: draining", flush=True)
    await node.drain()
    print("hubbub: stopped", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run a node until SIGTERM or SIGINT, then drain it."""
    gc.set_threshold(*GC_THRESHOLDS)
    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # websockets logs every connection at INFO: too much for thousands of clients.
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0
