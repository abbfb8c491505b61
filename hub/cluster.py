"""``hubbub cluster``: the docker topology as local processes, for development and benchmarks.

Starts one ``redis-server`` (AOF on, in ``<data-dir>/redis``; with ``--redis-cluster`` a
Redis Cluster of ``--masters`` masters with ``--replicas`` replicas each, in
``<data-dir>/redis<i>``: ``hub.local_redis``) and N ``hubbub serve --redis`` nodes on
loopback ports, prints each node's URL, and stops everything on
SIGINT/SIGTERM (nodes drain first, then Redis shuts down writing its AOF). With
``--haproxy`` a Debian ``haproxy`` runs in front of the nodes with the compose topology's
configuration (``hub.haproxy``: leastconn, ``/readyz`` checks, the WebSocket tunnel
timeout) on ``--lb-port``; without it, spread clients over the printed URLs yourself.
Every node gets the same
token secret (``HUBBUB_SECRET``, else the one kept in ``<data-dir>``), so a token from
any node - or from ``hubbub token NAME --data-dir <data-dir>`` - works on all of them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from hub.haproxy import local_config, template
from hub.local_redis import LocalRedis, free_port, start_redis, start_redis_cluster, wait_for_port
from hub.tokens import SecretError, resolve_secret

__all__ = ["DESCRIPTION", "configure", "run"]

DESCRIPTION = """\
Run a local cluster: one redis-server (append-only file on) and N hub nodes sharing it,
all on 127.0.0.1, until Ctrl-C. Prints one ws:// URL per node.

Example:  hubbub cluster --nodes 3 --dev
          hubbub cluster --nodes 3 --dev --haproxy   (one URL in front of them all)
          hubbub cluster --nodes 2 --dev --redis-cluster   (3 masters, a replica each)
Options after `--` go to every `hubbub serve` (e.g. -- --presence-ttl 5).
Needs redis-server on PATH (Debian: apt-get install redis-server), redis-cli for
--redis-cluster (apt-get install redis-tools; the cluster starts empty each time), and
haproxy for --haproxy (apt-get install haproxy).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``cluster``'s options."""
    parser.add_argument("--nodes", type=int, default=3, help="how many hub nodes [default 3]")
    parser.add_argument(
        "--port", type=int, default=8765, help="first node's port, then +1 each; 0 = free ports"
    )
    parser.add_argument(
        "--redis-port", type=int, default=0, help="Redis port [default: a free one]"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("hubbub-cluster"), help="Redis and node data"
    )
    parser.add_argument(
        "--appendfsync",
        choices=["always", "everysec"],
        default="always",
        help="Redis AOF fsync policy (see README: durability) [default always]",
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="run a Redis Cluster (--masters, --replicas) instead of one redis-server",
    )
    parser.add_argument(
        "--masters", type=int, default=3, help="with --redis-cluster: masters [default 3]"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="with --redis-cluster: replicas of each master [default 1]",
    )
    parser.add_argument("--dev", action="store_true", help="nodes hand out /dev/token")
    parser.add_argument(
        "--haproxy",
        action="store_true",
        help="run haproxy in front of the nodes (docker/haproxy.cfg, loopback ports)",
    )
    parser.add_argument(
        "--lb-port",
        type=int,
        default=8760,
        help="the load balancer's port with --haproxy; 0 = a free one [default 8760]",
    )
    parser.add_argument("serve_args", nargs="*", help="extra `hubbub serve` options after --")


def _start_haproxy(
    args: argparse.Namespace, nodes: list[int]
) -> tuple[subprocess.Popen[bytes], int]:
    """HAProxy over ``nodes`` (their ports), configured in ``<data-dir>/haproxy``."""
    binary = shutil.which("haproxy")
    if binary is None:
        raise SystemExit("hubbub cluster: haproxy not found; install it (apt-get install haproxy)")
    try:
        text = template()
    except FileNotFoundError as exc:
        raise SystemExit(f"hubbub cluster: {exc}") from None
    port, stats = args.lb_port or free_port(), free_port()
    directory = (args.data_dir / "haproxy").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "haproxy.cfg"
    # each proxied connection holds two descriptors: stay within this process's limit
    maxconn = max(100, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100) // 2)
    config.write_text(local_config(text, port, stats, nodes, check="1s", maxconn=maxconn))
    process = subprocess.Popen([binary, "-db", "-f", str(config)])
    wait_for_port(port, process, "haproxy")
    return process, port


def _start_redis(args: argparse.Namespace) -> LocalRedis:
    """The Redis the nodes share: one server, or a Redis Cluster with ``--redis-cluster``."""
    if not args.redis_cluster:
        return start_redis(
            args.data_dir / "redis", args.redis_port or free_port(), args.appendfsync
        )
    if args.masters < 3 or args.replicas < 0:
        raise SystemExit("hubbub cluster: a Redis Cluster needs --masters 3 or more, --replicas 0+")
    return start_redis_cluster(args.data_dir, args.masters, args.replicas, args.appendfsync)


def _start_node(
    args: argparse.Namespace, index: int, redis: LocalRedis, env: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    """Start node ``index``; return it and the port it listens on."""
    port = 0 if args.port == 0 else args.port + index
    command = [sys.executable, "-m", "hub.cli", "serve", "--redis", redis.url]
    command += ["--redis-cluster"] if redis.cluster else []
    command += ["--port", str(port), "--data-dir", str(args.data_dir / f"node{index}")]
    command += [*(["--dev"] if args.dev else []), *args.serve_args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
    )
    assert process.stdout is not None
    for line in process.stdout:
        print(f"node{index}: {line}", end="", flush=True)
        if "listening on" in line:
            threading.Thread(target=_echo, args=(index, process), daemon=True).start()
            return process, int(line.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    raise SystemExit(f"hubbub cluster: node{index} exited early (see its output above)")


def _echo(index: int, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        print(f"node{index}: {line}", end="", flush=True)


def run(args: argparse.Namespace) -> int:
    """Start Redis and the nodes; stop them all on SIGINT/SIGTERM."""
    if args.nodes < 1:
        raise SystemExit("hubbub cluster: --nodes must be at least 1")
    try:
        secret = resolve_secret(os.environ.get("HUBBUB_SECRET"), args.data_dir)
    except (SecretError, OSError) as exc:
        raise SystemExit(f"hubbub cluster: {exc}") from None
    redis = _start_redis(args)
    nodes: list[subprocess.Popen[str]] = []
    balancer: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        env = {**os.environ, "HUBBUB_SECRET": secret}
        ports = []
        for index in range(args.nodes):
            node, port = _start_node(args, index, redis, env)
            nodes.append(node)
            ports.append(port)
        if args.haproxy:
            balancer, lb_port = _start_haproxy(args, ports)
            print(f"hubbub cluster: load balancer at ws://127.0.0.1:{lb_port}/", flush=True)
        what = "a Redis Cluster" if redis.cluster else "redis"
        print(f"hubbub cluster: {what} at {redis.url}; {args.nodes} nodes up; Ctrl-C stops")
        stop.wait()
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(timeout=10)
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=30)
        redis.stop()
    return 0
