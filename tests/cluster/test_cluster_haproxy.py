"""A real HAProxy, configured from ``docker/haproxy.cfg``, in front of three nodes on one
Redis: WebSocket through it; a node killed behind it while its clients resume through
it; a draining node leaving the rotation while its ``/readyz`` fails, its clients
resuming elsewhere and new ones never sent to it. SDK clients throughout: they reconnect
and resume on their own, and nothing is missed or repeated."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clients import Client, FeedInsert, connect
from hub.tokens import issue_token
from tests.clients.conftest import FAST
from tests.cluster.conftest import SECRET, Cluster, NodeProcess
from tests.haproxyproc import HaProxy


@pytest.fixture
async def balanced(cluster: Cluster, tmp_path: Path) -> AsyncIterator[HaProxy]:
    """Three nodes behind HAProxy."""
    nodes = cluster.start_nodes(3, "--drain-timeout", "1")
    proxy = await asyncio.to_thread(HaProxy(tmp_path / "haproxy", [n.port for n in nodes]).start)
    yield proxy
    proxy.stop()


def connections(node: NodeProcess) -> int:
    """The node's open authenticated connections (its ``/metrics``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("hubbub_connections "):
                return int(float(line.split()[1]))
    raise AssertionError("no hubbub_connections in /metrics")


async def where(cluster: Cluster) -> list[int]:
    """Open connections per node, in node order."""
    return [await asyncio.to_thread(connections, node) for node in cluster.nodes]


class Feed:
    """The texts of the posts inserted into a client's feed, in order, and a way to wait."""

    def __init__(self, client: Client) -> None:
        self.texts: list[str] = []
        self._changed = asyncio.Event()
        client.connection.add_listener(self._heard)

    def _heard(self, event: object) -> None:
        if isinstance(event, FeedInsert):
            self.texts.append(event.post.text)
            self._changed.set()

    async def wait_for(self, text: str) -> None:
        """Wait until ``text`` arrived (10 s at most)."""
        async with asyncio.timeout(10):
            while text not in self.texts:
                self._changed.clear()
                await self._changed.wait()


async def sign_in(url: str, user: str) -> Client:
    """An SDK client of ``user`` at ``url`` (quick reconnects)."""
    return await connect(url, token=issue_token(user, SECRET), **FAST)


async def ann_follows_bob(cluster: Cluster, proxy: HaProxy) -> tuple[Client, Client, Feed, int]:
    """Ann and bob through the proxy, on two nodes, ann following bob: their clients,
    ann's feed and the index of ann's node."""
    ann = await sign_in(proxy.url, "ann")
    ann_node = (await where(cluster)).index(1)
    bob = await sign_in(proxy.url, "bob")
    assert (await where(cluster))[ann_node] == 1  # bob is on another node
    feed = Feed(ann)
    await ann.follow("bob")
    return ann, bob, feed, ann_node


async def test_websockets_through_haproxy_reach_users_on_other_nodes(
    cluster: Cluster, balanced: HaProxy
) -> None:
    users = [await sign_in(balanced.url, user) for user in ("ann", "bob", "cat")]
    assert await where(cluster) == [1, 1, 1]  # leastconn spread them
    ann, bob, cat = users
    feed = Feed(ann)
    await ann.follow("bob")
    await ann.follow("cat")
    await bob.post("from bob's node")
    await cat.post("from cat's node")
    await feed.wait_for("from cat's node")
    assert sorted(feed.texts) == ["from bob's node", "from cat's node"]
    for client in users:
        await client.close()


async def test_a_node_killed_behind_haproxy_its_clients_resume_through_it(
    cluster: Cluster, balanced: HaProxy
) -> None:
    ann, bob, feed, ann_node = await ann_follows_bob(cluster, balanced)
    await bob.post("before")
    await feed.wait_for("before")

    await asyncio.to_thread(cluster.nodes[ann_node].kill)
    await asyncio.to_thread(balanced.wait_for, lambda s: s[f"hub{ann_node + 1}"] == "DOWN")
    written = []
    for i in range(3):
        written.append(f"while ann's node was gone {i}")
        await bob.post(written[-1])
    await feed.wait_for(written[-1])
    assert feed.texts == ["before", *written]  # each once, in order
    stats = ann.connection.stats
    assert stats.reconnects >= 1 and stats.resumes >= 1 and stats.resyncs == 0
    assert sum(await where_alive(cluster)) == 2
    await ann.close()
    await bob.close()


async def where_alive(cluster: Cluster) -> list[int]:
    """Open connections per node still running."""
    alive = [n for n in cluster.nodes if n.process is not None and n.process.poll() is None]
    return [await asyncio.to_thread(connections, node) for node in alive]


async def test_a_draining_node_leaves_the_rotation_and_its_clients_resume_elsewhere(
    cluster: Cluster, balanced: HaProxy
) -> None:
    ann, bob, feed, draining = await ann_follows_bob(cluster, balanced)
    node = cluster.nodes[draining]

    assert node.process is not None
    node.process.terminate()  # SIGTERM: drain
    await asyncio.to_thread(balanced.wait_for, lambda s: s[f"hub{draining + 1}"] == "DOWN")
    await bob.post("while it drains")
    await asyncio.to_thread(node.terminate)  # reaped: the drain ended, ann was closed 4000
    await bob.post("after the drain")
    await feed.wait_for("after the drain")
    assert feed.texts == ["while it drains", "after the drain"]  # each once, in order
    stats = ann.connection.stats
    assert (stats.reconnects, stats.resumes, stats.resyncs) == (1, 1, 0)
    assert stats.last_close_code == 4000

    newcomers = [await sign_in(balanced.url, f"new{i}") for i in range(4)]
    assert sum(await where_alive(cluster)) == 2 + 4  # all on the nodes in rotation
    for client in [ann, bob, *newcomers]:
        await client.close()
