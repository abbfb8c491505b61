"""Partitions on a real Redis Cluster (docs/cluster.md): their slots spread over the
masters, their numbering and ticks run in their own slot and shard, and a killed master's
partitions go on numbering above every acknowledged change once a replica took over."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from hub.backends.partitions import NUMBERING_LUA, Partitions
from hub.backends.redis_partitions import PartitionCounters
from tests.redisclusterproc import RedisCluster

PARTS = Partitions(16)
_NEXT = NUMBERING_LUA + "return next_number(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 0)"


def _master_of(client: ClusterClient, key: str) -> int:
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


async def test_the_cluster_has_three_masters_and_the_partitions_use_all_of_them(
    redis_cluster: RedisCluster, client: ClusterClient
) -> None:
    assert len(redis_cluster.master_ports()) == 3
    slots = {key_slot(PARTS.counter(part).encode()) for part in range(PARTS.count)}
    assert len(slots) == PARTS.count  # one slot per partition
    owners = {_master_of(client, PARTS.counter(part)) for part in range(PARTS.count)}
    assert owners == set(redis_cluster.master_ports())


async def test_partitions_number_apart_and_a_close_ticks_on_the_shard_channel(
    client: ClusterClient,
) -> None:
    counters = PartitionCounters(client, PARTS)
    numbering = client.register_script(_NEXT)
    numbered = [
        (part, int(await numbering(keys=[PARTS.counter(part)], args=[part, PARTS.count])))
        for part in range(PARTS.count)
        for _ in range(3)
    ]
    assert len({number for _, number in numbered}) == len(numbered)  # no number twice
    assert all(PARTS.of_number(number) == part for part, number in numbered)
    heads = await counters.heads()
    assert [PARTS.of_number(head) for head in heads] == list(range(PARTS.count))

    pubsub = client.pubsub()
    await pubsub.ssubscribe(PARTS.tick_channel(5))
    target = max(heads) + 100
    closed = await counters.close(5, target)
    assert closed >= target and PARTS.of_number(closed) == 5
    assert await counters.head(5) == closed
    message = None
    async with asyncio.timeout(10):
        while message is None:
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1)
    assert message["channel"] == PARTS.tick_channel(5)
    assert int(message["data"]) == closed
    assert await counters.close(5, 1) == closed  # below the counter: unchanged
    await pubsub.aclose()


async def test_a_killed_masters_partition_numbers_above_its_acknowledged_changes(
    redis_cluster: RedisCluster, client: ClusterClient
) -> None:
    part = 7
    counter = PARTS.counter(part)
    port = _master_of(client, counter)
    direct = aioredis.Redis(port=port, decode_responses=True)
    acknowledged = 0
    for _ in range(20):  # each numbered change acknowledged once a replica has it
        async with direct.pipeline(transaction=False) as pipe:
            pipe.eval(_NEXT, 1, counter, part, PARTS.count)
            pipe.execute_command("WAIT", 1, 2000)
            number, replicas = await pipe.execute()
        assert int(replicas) == 1
        acknowledged = int(number)
    await direct.aclose()

    redis_cluster.kill(port)
    await asyncio.to_thread(redis_cluster.wait_failover)
    fresh = ClusterClient.from_url(redis_cluster.url, decode_responses=True)
    numbering = fresh.register_script(_NEXT)
    after = int(await numbering(keys=[counter], args=[part, PARTS.count]))
    assert _master_of(fresh, counter) != port  # a replica serves the slot now
    assert after > acknowledged and PARTS.of_number(after) == part
    await fresh.aclose()
