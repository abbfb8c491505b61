"""A Redis Cluster master killed under two real nodes (``hubbub serve --redis-cluster``).

What is promised (README "Redis Cluster", docs/cluster.md 5): a write a replica has
survives its master's death; while the replica takes over, the nodes answer 503 on
``/readyz`` and live delivery pauses; after it, the nodes recover on their own (no restart),
delivery resumes in order, and a client that reconnects with its cursor gets exactly what
it missed. (Writes are acknowledged before they reach a replica - no ``WAIT`` yet - so the
test lets replication catch up before it kills the master: a write acknowledged in the
instant before a master dies may be lost.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from hub.backends.partitions import Partitions
from protocol import Event
from protocol.errors import ErrorCode
from protocol.messages import Reply
from tests.cluster.conftest import Cluster
from tests.hub.wsclient import WsClient
from tests.redisclusterproc import RedisCluster

PARTITIONS = 4


def ids_inserted(events: list[Event]) -> list[int]:
    """The post ids of the ``feed.insert`` events, in arrival order."""
    return [int(e.data["id"]) for e in events if e.type == "feed.insert"]


@pytest.fixture
async def cluster(tmp_path: Path, redis_cluster: RedisCluster) -> AsyncIterator[Cluster]:
    """Two nodes on the module's own Redis Cluster (three masters with a replica each)."""
    running = Cluster(tmp_path, redis_cluster, "--redis-cluster", "--partitions", str(PARTITIONS))
    running.start_nodes(2)
    yield running
    await running.close()


async def _replicated(url: str) -> None:
    """Wait until every master's replica has acknowledged all its writes (``WAIT``)."""
    client = ClusterClient.from_url(url)
    try:
        await client.execute_command("WAIT", 1, 5000, target_nodes=ClusterClient.PRIMARIES)
    finally:
        await client.aclose()


async def _master_of(url: str, user: str) -> int:
    """The port of the master serving ``user``'s partition now."""
    client = ClusterClient.from_url(url)
    try:
        await client.initialize()
        parts = Partitions(PARTITIONS)
        node = client.get_node_from_key(parts.counter(parts.of_user(user)))
        assert node is not None
        return int(node.port)
    finally:
        await client.aclose()


async def _post(client: WsClient, text: str) -> int:
    """Post ``text``; a node whose client still knew the dead master answers
    ``unavailable`` once (the write never reached Redis), and the post is sent again."""
    for _ in range(3):
        reply = await client.call_raw("post", text=text)
        if isinstance(reply, Reply):
            return int(reply.result["id"])
        assert reply.code == ErrorCode.UNAVAILABLE, reply
    raise AssertionError(f"post {text!r} refused three times")


async def test_a_killed_master_pauses_delivery_and_nothing_replicated_is_lost(
    cluster: Cluster, redis_cluster: RedisCluster
) -> None:
    ann = await cluster.connect("ann", 0)
    bob = await cluster.connect("bob", 1)
    await bob.client.call("follow", user="ann")
    before = [(await ann.client.call("post", text=f"before {n}"))["id"] for n in range(5)]
    await bob.wait_for(lambda events: len(ids_inserted(events)) == 5)
    cursor = bob.client.cursor
    await bob.client.close()
    await _replicated(redis_cluster.url)

    redis_cluster.kill(await _master_of(redis_cluster.url, "ann"))
    for node in cluster.nodes:
        await node.wait_readyz(503)  # the partition's subscriber lost its master
    await asyncio.to_thread(redis_cluster.wait_failover)
    for node in cluster.nodes:
        await node.wait_readyz(200)  # the replica took over; the nodes found it

    after = [await _post(ann.client, f"after {n}") for n in range(5)]
    resumed = await cluster.connect("bob", 0, cursor=cursor)
    await resumed.wait_for(lambda events: len(ids_inserted(events)) == 5)
    assert ids_inserted(resumed.events) == after  # exactly what it missed, in order, once
    page = await resumed.client.call("feed.home", limit=20)
    assert [p["id"] for p in page["items"]] == [*after[::-1], *before[::-1]]  # nothing lost
