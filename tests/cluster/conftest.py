"""Fixtures: a real redis-server (AOF on) and real ``hubbub serve --redis`` processes."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from hub.tokens import issue_token
from protocol import Event
from tests.hub.serverproc import ServerProcess
from tests.hub.wsclient import WAIT, WsClient
from tests.redisproc import RedisServer

SECRET = "cluster-secret-0123456789-0123456789"
PRESENCE_TTL = 1.5
NODE_ARGS = ("--presence-ttl", str(PRESENCE_TTL), "--presence-grace", "0.2")
NODE_ARGS += ("--counts-window", "0.05", "--log-level", "warning")


class NodeProcess(ServerProcess):
    """A ``hubbub serve --redis`` child whose output is drained in the background."""

    def __init__(self, data_dir: Path, redis_url: str, *extra: str) -> None:
        super().__init__(data_dir, SECRET, "--redis", redis_url, *NODE_ARGS, *extra)
        self._drain: threading.Thread | None = None

    def start(self) -> int:
        """Start, wait for the port, then keep reading output so the pipe never fills."""
        port = super().start()
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        self._drain = threading.Thread(target=lambda: self.output.extend(stdout), daemon=True)
        self._drain.start()
        return port

    def terminate(self) -> str:
        """SIGTERM, wait for the drain to finish, return the output."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        if self._drain is not None:
            self._drain.join(timeout=5)
        return "".join(self.output)

    def readyz(self) -> int:
        """The HTTP status of ``/readyz``."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    async def wait_readyz(self, status: int) -> None:
        """Wait (at most WAIT seconds) until ``/readyz`` answers ``status``."""
        await asyncio.to_thread(self._poll_readyz, status)

    def _poll_readyz(self, status: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.readyz() != status:
            if time.monotonic() > deadline:
                raise TimeoutError(f"/readyz never answered {status}")
            time.sleep(0.05)  # polling another process's state, not a timer


class Inbox:
    """Every event a client received, kept so that tests can wait for conditions on them."""

    def __init__(self, client: WsClient) -> None:
        self.client = client
        self.events: list[Event] = []

    async def wait_for(self, condition: Callable[[list[Event]], bool], wait: float = WAIT) -> None:
        """Read events until ``condition(events)`` holds (fails after ``wait`` seconds)."""
        async with asyncio.timeout(wait):
            while not condition(self.events):
                self.events.append(await self.client.events.get())

    def of(self, kind: str) -> list[Event]:
        """The events of one type, in arrival order."""
        return [event for event in self.events if event.type == kind]


Connect = Callable[[str, int], Awaitable[Inbox]]


class Shared(Protocol):
    """What the nodes share: a redis-server, or a Redis Cluster (a seed node's URL)."""

    @property
    def url(self) -> str:
        """The URL the nodes get with ``--redis``."""
        ...


class Cluster:
    """Redis plus hub nodes, and the clients tests open on them."""

    def __init__(self, tmp_path: Path, redis: Shared, *node_args: str) -> None:
        """``redis``: the server (or Redis Cluster) every node shares; ``node_args``: options
        every node gets (``--redis-cluster`` for a cluster)."""
        self.tmp_path = tmp_path
        self.redis = redis
        self.node_args = node_args
        self.nodes: list[NodeProcess] = []
        self.clients: list[WsClient] = []

    def start_nodes(self, count: int, *extra: str) -> list[NodeProcess]:
        """Start ``count`` more nodes on the shared Redis (``extra``: more options)."""
        for _ in range(count):
            directory = self.tmp_path / f"node{len(self.nodes)}"
            node = NodeProcess(directory, self.redis.url, *self.node_args, *extra)
            node.start()
            self.nodes.append(node)
        return self.nodes

    async def connect(self, user: str, node: int, **auth: Any) -> Inbox:
        """An authenticated client of ``user`` on node number ``node`` (``auth`` holds more
        arguments of the ``auth`` request, such as ``cursor`` and ``streams``)."""
        client = await WsClient.open(self.nodes[node].url)
        self.clients.append(client)
        result = await client.call("auth", token=issue_token(user, SECRET), **auth)
        client.cursor = result["cursor"]
        return Inbox(client)

    async def close(self) -> None:
        """Close clients and stop every node still running."""
        for client in self.clients:
            await client.close()
        for node in self.nodes:
            node.terminate()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test (AOF, appendfsync always), stopped at the end."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
async def cluster(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Cluster]:
    """A cluster with no nodes yet: call ``cluster.start_nodes(n)``."""
    running = Cluster(tmp_path, redis_server)
    yield running
    await running.close()
