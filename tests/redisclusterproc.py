"""A real Redis Cluster for tests: ``redis-server --cluster-enabled yes`` processes on free
loopback ports, joined by ``redis-cli --cluster create``.

``RedisCluster(dir, masters=3, replicas=1).start()`` launches ``masters * (1 + replicas)``
servers (AOF on, ``appendfsync always``), creates the cluster and returns once every node
reports ``cluster_state:ok`` and agrees on all 16384 slots. ``kill(port)`` ends one server
with SIGKILL; ``wait_failover(port)`` waits until a replica of a killed master has taken
its slots and the cluster is ok again. ``stop()`` ends them all. Never port 6379, never a
server someone else started.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.redisproc import RedisServer, free_port

__all__ = ["ClusterNode", "RedisCluster", "require_redis_cli"]

CREATE_TIMEOUT = 30.0
NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: how long a master may be silent before its replica takes over
(Redis' default is 15 s; a test cluster fails over in a second or two)."""


def require_redis_cli() -> str:
    """The path of ``redis-cli``; fails with what to do when it is missing."""
    path = shutil.which("redis-cli")
    if path is None:
        raise RuntimeError(
            "redis-cli not found: `make test` installs it (apt-get install redis-tools)"
        )
    return path


def _cli(port: int, *args: str, timeout: float = 5.0) -> str:
    """Run one ``redis-cli`` command against the server on ``port``; its output."""
    done = subprocess.run(
        [require_redis_cli(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout + done.stderr


@dataclass
class ClusterNode:
    """One server of the cluster: its process and its port."""

    server: RedisServer
    alive: bool = True

    @property
    def port(self) -> int:
        """The node's port."""
        return self.server.port

    def info(self) -> dict[str, str]:
        """``CLUSTER INFO`` as a mapping."""
        lines = _cli(self.port, "cluster", "info").splitlines()
        return dict(line.strip().split(":", 1) for line in lines if ":" in line)

    def role(self) -> str:
        """``master`` or ``slave`` (as ``ROLE`` says)."""
        return _cli(self.port, "role").split("\n", 1)[0].strip()

    def replicating(self) -> bool:
        """Whether this node is a master, or a replica whose link to its master is up."""
        lines = _cli(self.port, "info", "replication").splitlines()
        info = dict(line.strip().split(":", 1) for line in lines if ":" in line)
        return info.get("role") == "master" or info.get("master_link_status") == "up"


@dataclass
class RedisCluster:
    """A Redis Cluster of real processes (see the module docstring)."""

    directory: Path
    masters: int = 3
    replicas: int = 0
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL of one seed node (``redis://``); a cluster client finds the rest."""
        return f"redis://127.0.0.1:{self.live_ports()[0]}/0"

    @property
    def seeds(self) -> list[str]:
        """``host:port`` of every node started."""
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def live_ports(self) -> list[int]:
        """The ports of the nodes not killed."""
        return [node.port for node in self.nodes if node.alive]

    def start(self) -> RedisCluster:
        """Start the servers, create the cluster, wait until it is ok."""
        for index in range(self.masters * (1 + self.replicas)):
            server = RedisServer(self.directory / f"node{index}")
            server.port = free_port()
            server.extra = (
                "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),  # not port + 10000, which may be taken
                "--cluster-config-file", str(server.directory / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-allow-replica-migration", "no",
                "--cluster-replica-validity-factor", "0",
            )  # fmt: skip
            self.nodes.append(ClusterNode(server.start()))
        created = _cli(
            self.nodes[0].port,
            "--cluster", "create", *self.seeds,
            "--cluster-replicas", str(self.replicas),
            "--cluster-yes",
            timeout=CREATE_TIMEOUT,
        )  # fmt: skip
        if "[OK] All 16384 slots covered" not in created:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created}")
        self.wait_ok()
        return self

    def master_ports(self) -> list[int]:
        """The ports of the live nodes that are masters now."""
        return [node.port for node in self.nodes if node.alive and node.role() == "master"]

    def wait_ok(self, within: float = CREATE_TIMEOUT) -> None:
        """Wait until every live node says ``cluster_state:ok`` with all slots served and
        ``masters`` masters among the live nodes, each live replica linked to its master."""
        deadline = time.monotonic() + within
        while True:
            live = [node for node in self.nodes if node.alive]
            infos = [node.info() for node in live]
            ok = all(
                info.get("cluster_state") == "ok" and info.get("cluster_slots_ok") == "16384"
                for info in infos
            )
            if (
                ok
                and len(self.master_ports()) == self.masters
                and all(node.replicating() for node in live)
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok within {within:g} s: {infos}")
            time.sleep(0.05)  # polling child processes' state, not test synchronisation

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (no AOF rewrite, no goodbye to the cluster)."""
        for node in self.nodes:
            if node.port == port:
                node.server.stop(kill=True)
                node.alive = False
                return
        raise KeyError(port)

    def wait_failover(self, within: float = 20.0) -> None:
        """Wait until the killed masters' replicas serve their slots (the cluster is ok)."""
        self.wait_ok(within)

    def stop(self) -> None:
        """End every server still running."""
        for node in self.nodes:
            if node.alive:
                node.server.stop(kill=True)
                node.alive = False
