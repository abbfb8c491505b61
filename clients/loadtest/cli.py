"""``hubbub loadtest``: simulate many users against a hub and report latency."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path

from clients.loadtest.config import SCENARIOS, LoadConfig
from clients.loadtest.graph import GraphError, GraphSpec, SocialGraph
from clients.loadtest.report import format_report
from clients.loadtest.workers import LoadTestError, run_loadtest
from clients.sdk.tls import trusting

__all__ = ["DESCRIPTION", "configure", "run"]

DESCRIPTION = """\
Simulate many users, each on a real WebSocket connection, against a hub URL (one
node or a load balancer), and report publish -> receive latency, deliveries per
second, errors by code and exactly-once correctness (missed / duplicated posts).

scenarios:
  idle    connect the users and hold the connections for --duration
  burst   user 0 (the most followed) publishes --posts posts as fast as allowed
  steady  every user posts, replies, likes and follows at the given rates for --duration
  storm   cut every connection but --posters', reconnect them within
          --storm-window seconds with resume, while the posters keep posting

The social graph (power-law follower counts) is created through the protocol:
users lt0..ltN authenticate, then follow. --graph FILE saves it; a later run with
the same FILE reuses it without making the follows again (same hub data).
Tokens are signed here with --secret (fast), else fetched from a --dev hub.

example:
  hubbub serve --dev --write-rate 1000 --write-burst 1000 &
  hubbub loadtest ws://127.0.0.1:8765/ --scenario burst --users 2000 --star --follows 0
"""


def count(text: str) -> int:
    """An argparse type: an int of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def rate(text: str) -> float:
    """An argparse type: a finite float of 0 or more."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``loadtest``'s options."""
    parser.add_argument(
        "url",
        nargs="+",
        help="the hub's WebSocket URL, e.g. ws://127.0.0.1:8765/; with several (nodes of "
        "one cluster), user i connects to URL number i modulo their count",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="steady")
    graph = parser.add_argument_group("social graph")
    graph.add_argument("--users", type=count, default=1000, help="simulated users [1000]")
    graph.add_argument("--follows", type=count, default=20, help="follows per user [20]")
    graph.add_argument(
        "--authors", type=count, default=0, help="follow only the first N users [0: any]"
    )
    graph.add_argument("--alpha", type=rate, default=1.0, help="power-law exponent [1.0]")
    graph.add_argument("--star", action="store_true", help="every user also follows user 0")
    graph.add_argument("--seed", type=count, default=1, help="graph random seed [1]")
    graph.add_argument("--prefix", default="lt", help="user ids are PREFIX0..PREFIXn [lt]")
    graph.add_argument(
        "--graph",
        dest="graph_file",
        type=Path,
        help="save the graph here; reuse it if present",
    )
    conn = parser.add_argument_group("connections")
    conn.add_argument("--secret", help="the hub's token secret: sign tokens here")
    conn.add_argument("--codec", choices=["json", "msgpack"], default="json")
    conn.add_argument("--workers", type=count, default=1, help="processes [1]")
    conn.add_argument("--ramp", type=rate, default=0.0, help="connections/s [0: no limit]")
    conn.add_argument("--concurrency", type=count, default=200, help="handshakes at once [200]")
    conn.add_argument(
        "--ca-file",
        type=Path,
        help="for wss:// URLs: PEM file of the CA that signed the hub's certificate "
        "[the system's CAs]",
    )
    conn.add_argument("--connection", default="", help=argparse.SUPPRESS)
    check_every = parser.add_argument_group("measurement")
    check_every.add_argument(
        "--decode-every",
        type=count,
        default=250,
        metavar="N",
        help="decode every frame of users 0, N, 2N, ... and check each post by (author, "
        "seq); the others count post events in the raw frames and check counts and "
        "cursor order, so the client out-runs the hub [250; 1: decode all]",
    )
    check_every.add_argument(
        "--hub-pid",
        dest="hub_pids",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="a hub process on this machine whose CPU to report beside the workers' (repeatable)",
    )
    work = parser.add_argument_group("work")
    work.add_argument("--duration", type=rate, default=10.0, help="seconds (idle/steady) [10]")
    work.add_argument("--posts", type=count, default=100, help="burst: posts [100]")
    work.add_argument("--posts-per-user", type=count, default=0, help="steady: cap [0: none]")
    work.add_argument("--post-rate", type=rate, default=0.1, help="posts/s per user [0.1]")
    work.add_argument("--reply-rate", type=rate, default=0.0, help="replies/s per user [0]")
    work.add_argument("--like-rate", type=rate, default=0.0, help="likes/s per user [0]")
    work.add_argument("--follow-rate", type=rate, default=0.0, help="follows/s per user [0]")
    work.add_argument("--pipeline", type=count, default=64, help="burst: posts in flight [64]")
    work.add_argument("--settle", type=rate, default=1.0, help="quiet seconds = done [1]")
    work.add_argument("--storm-window", type=rate, default=5.0, help="storm: seconds [5]")
    work.add_argument(
        "--posters",
        type=count,
        default=0,
        help="only users 0..N-1 post (steady; storm: they post and are never cut) [0: all; "
        "storm: 10]",
    )
    check = parser.add_argument_group("self-check (known faults the report must show)")
    check.add_argument(
        "--inject-loss", type=count, default=0, help="cut N followers of user 0, no resume"
    )
    check.add_argument(
        "--inject-dup", type=count, default=0, help="N followers resume from their first cursor"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the full result here")
    out.add_argument("--plot", type=Path, help="draw latency over time and percentiles (PNG)")
    out.add_argument("--quiet", action="store_true", help="no live progress line")


def _config(args: argparse.Namespace) -> LoadConfig:
    spec = GraphSpec(**{f.name: getattr(args, f.name) for f in fields(GraphSpec)})
    values = {f.name: getattr(args, f.name) for f in fields(LoadConfig) if f.name in vars(args)}
    values.update(
        urls=tuple(args.url),
        graph=spec,
        codec=f"hubbub.v1.{args.codec}",
        workers=max(1, args.workers),
        concurrency=max(1, args.concurrency),
        pipeline=max(1, args.pipeline),
        progress=not args.quiet,
        hub_pids=tuple(args.hub_pids),
    )
    return LoadConfig(**values)


def load_graph(config: LoadConfig) -> tuple[SocialGraph, bool]:
    """The run's graph and whether its follows must still be made on the hub."""
    path = config.graph_file
    if path is not None and path.exists():
        return SocialGraph.load(path), False
    return SocialGraph.generate(config.graph), True


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _show(line: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{line:<100}", end="" if line else "\n", file=sys.stderr, flush=True)
    elif line:
        print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the load test, print the report, write --json / --plot."""
    for url in args.url:
        if not url.startswith(("ws://", "wss://")):
            print(f"hubbub loadtest: {url!r} is not a ws:// or wss:// URL", file=sys.stderr)
            return 2
    config = _config(args)
    try:
        trusting(config.ca_file)
    except ValueError as exc:
        print(f"hubbub loadtest: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminated)  # unwind, so that the workers are stopped
    try:
        graph, make_follows = load_graph(config)
        if not make_follows:
            print(
                f"hubbub loadtest: reusing {config.graph_file} ({graph.size:,} users,"
                f" {graph.edges:,} follows already made on the hub)",
                file=sys.stderr,
            )
        result = run_loadtest(config, graph, make_follows, _show if config.progress else None)
    except GraphError as exc:
        print(f"hubbub loadtest: {exc}", file=sys.stderr)
        return 2
    except LoadTestError as exc:
        print(f"hubbub loadtest: {exc}", file=sys.stderr)
        return 1
    if make_follows and config.graph_file is not None and not result["connections"]["failed"]:
        graph.save(config.graph_file)
    print(format_report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.plot is not None:
        from clients.loadtest.plot import PlotError, plot_result  # noqa: PLC0415 - optional

        try:
            plot_result(result, args.plot)
        except PlotError as exc:
            print(f"hubbub loadtest: {exc}", file=sys.stderr)
            return 1
    return 0 if result["connections"]["up"] else 1
