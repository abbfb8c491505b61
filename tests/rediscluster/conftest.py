"""A real three-master Redis Cluster with one replica each, shared by this package's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from tests.redisclusterproc import RedisCluster


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three masters and three replicas from ``redis-server --cluster-enabled yes``."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"), masters=3, replicas=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def client(redis_cluster: RedisCluster) -> AsyncIterator[ClusterClient]:
    """A cluster client (answering str) of the module's cluster, its slot map read."""
    cluster = ClusterClient.from_url(redis_cluster.url, decode_responses=True)
    await cluster.initialize()
    yield cluster
    await cluster.aclose()
