"""``hubbub serve --redis URL --redis-cluster``: real nodes on a real three-master Redis
Cluster with replicas, run through the same end-to-end tests as nodes on one Redis
(``tests/cluster``): live updates on every node in one order, presence, blocks and mutes
across nodes, a killed node's users resuming elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from tests.cluster.conftest import Cluster
from tests.cluster.test_cluster_block_mute import (
    test_a_block_on_one_node_holds_on_the_other_and_after_a_reconnect,
    test_a_mute_on_one_node_hides_on_the_other_and_ends,
)
from tests.cluster.test_cluster_live import (
    test_every_update_reaches_every_follower_on_every_node,
    test_presence_agrees_on_every_node,
)
from tests.cluster.test_cluster_node_kill import (
    test_killed_node_users_go_offline_and_resume_elsewhere,
)
from tests.redisclusterproc import RedisCluster

__all__ = [
    "test_a_block_on_one_node_holds_on_the_other_and_after_a_reconnect",
    "test_a_mute_on_one_node_hides_on_the_other_and_ends",
    "test_every_update_reaches_every_follower_on_every_node",
    "test_killed_node_users_go_offline_and_resume_elsewhere",
    "test_presence_agrees_on_every_node",
]

PARTITIONS = "4"


async def _flush(redis_cluster: RedisCluster) -> None:
    """Empty every master: each test starts a new world (``hb:`` is the nodes' namespace)."""
    client = ClusterClient.from_url(redis_cluster.url)
    try:
        await client.flushall(target_nodes=ClusterClient.PRIMARIES)
    finally:
        await client.aclose()


@pytest.fixture
async def cluster(tmp_path: Path, redis_cluster: RedisCluster) -> AsyncIterator[Cluster]:
    """Nodes started with ``--redis-cluster`` on the module's Redis Cluster, emptied first."""
    await _flush(redis_cluster)
    running = Cluster(tmp_path, redis_cluster, "--redis-cluster", "--partitions", PARTITIONS)
    yield running
    await running.close()


async def test_a_node_with_another_partition_count_is_refused(
    tmp_path: Path, redis_cluster: RedisCluster
) -> None:
    await _flush(redis_cluster)
    running = Cluster(tmp_path, redis_cluster, "--redis-cluster", "--partitions", PARTITIONS)
    try:
        running.start_nodes(1)
        other = Cluster(tmp_path / "other", redis_cluster, "--redis-cluster", "--partitions", "8")
        with pytest.raises(RuntimeError) as refused:
            other.start_nodes(1)
        assert "start every node with --partitions 4" in str(refused.value)
    finally:
        await running.close()
