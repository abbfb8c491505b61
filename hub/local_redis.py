"""Redis as local processes for ``hubbub cluster``: one ``redis-server``, or a Redis Cluster
of several joined by ``redis-cli --cluster create``, all on 127.0.0.1 with the append-only
file on, each in its own directory under the data directory.

:class:`LocalRedis` holds the processes and the URL the nodes get; ``stop()`` ends them
(SIGTERM: each server writes its AOF and exits).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["START_TIMEOUT", "LocalRedis", "free_port", "start_redis", "start_redis_cluster"]

START_TIMEOUT = 15.0
"""Seconds a process (or the cluster's agreement) has to come up."""

STOP_TIMEOUT = 15.0
"""Seconds a server has to exit after SIGTERM."""

CLUSTER_NODE_TIMEOUT_MS = 2000
"""``cluster-node-timeout`` of a local cluster: a silent master's replica takes over after
about this long (Redis' default, 15 s, is long for development)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    """Return once ``port`` accepts connections; exit with a message if ``process`` ends
    or :data:`START_TIMEOUT` passes first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"hubbub cluster: {name} did not start on port {port}")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"hubbub cluster: {name} not found; install it (apt-get install redis)")
    return found


@dataclass
class LocalRedis:
    """Local Redis processes and the URL of one of them for ``hubbub serve --redis``."""

    url: str
    cluster: bool
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    """The port of each process, in order."""

    def stop(self) -> None:
        """End every server: SIGTERM (each writes its AOF), SIGKILL for one still running
        after :data:`STOP_TIMEOUT` seconds (a master waiting on a replica that left)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _server(directory: Path, port: int, appendfsync: str, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    command = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--dir", str(directory), "--appendonly", "yes", "--appendfsync", appendfsync]
    command += ["--save", "", "--logfile", str(directory / "redis.log"), *extra]
    process = subprocess.Popen(command)
    wait_for_port(port, process, f"redis-server on port {port}")
    return process


def start_redis(directory: Path, port: int, appendfsync: str) -> LocalRedis:
    """One ``redis-server`` on ``port`` with its data in ``directory``."""
    process = _server(directory.resolve(), port, appendfsync)
    return LocalRedis(f"redis://127.0.0.1:{port}/0", False, [process], [port])


def start_redis_cluster(
    directory: Path, masters: int, replicas: int, appendfsync: str
) -> LocalRedis:
    """A new Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on free
    ports, data in ``directory/redis<i>`` (emptied first: a cluster's node files name its
    ports, which are new each time); returns once every node agrees it is ok."""
    redis = LocalRedis("", True)
    ports = redis.ports
    try:
        for index in range(masters * (1 + replicas)):
            port, home = free_port(), (directory / f"redis{index}").resolve()
            shutil.rmtree(home, ignore_errors=True)
            cluster_mode = ["--cluster-enabled", "yes", "--cluster-port", str(free_port())]
            cluster_mode += ["--cluster-config-file", str(home / "nodes.conf")]
            cluster_mode += ["--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)]
            cluster_mode += ["--shutdown-timeout", "2"]  # Ctrl-C: do not wait on replicas long
            redis.processes.append(_server(home, port, appendfsync, *cluster_mode))
            ports.append(port)
        seeds = [f"127.0.0.1:{port}" for port in ports]
        created = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *seeds,
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if "All 16384 slots covered" not in created.stdout:
            raise SystemExit(
                f"hubbub cluster: redis-cli --cluster create failed:\n{created.stdout}"
            )
        _wait_cluster_ok(ports)
    except BaseException:
        redis.stop()
        raise
    redis.url = f"redis://127.0.0.1:{ports[0]}/0"
    return redis


def _wait_cluster_ok(ports: list[int]) -> None:
    """Wait until every node says ``cluster_state:ok`` (the slots are agreed on)."""
    deadline = time.monotonic() + START_TIMEOUT
    cli = _binary("redis-cli")
    for port in ports:
        while True:
            answer = subprocess.run(
                [cli, "-p", str(port), "cluster", "info"],
                capture_output=True, text=True, timeout=5, check=False,
            )  # fmt: skip
            if "cluster_state:ok" in answer.stdout:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"hubbub cluster: the Redis Cluster is not ok: {answer.stdout}")
            time.sleep(0.1)  # polling another process's state
