"""The Bus on a real Redis Cluster (docs/cluster.md 1-2): sharded channels per partition,
changes of many partitions handed on in one increasing order with quiet partitions closed
on demand, follows in their place, presence between two nodes, and a master killed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from hub.backends.base import BusGap, BusMessage, FollowChange
from hub.backends.partitions import NUMBERING_LUA, Partitions
from hub.backends.redis_cluster_bus import ClusterBus
from hub.names import PUBLIC, DevicesKey, FollowersKey, RouteKey, Stream, StreamKey
from hub.records import Change, PresenceChange
from tests.redisclusterproc import RedisCluster
from tests.waiting import until

PARTS = Partitions(8)

_COMMIT = (
    NUMBERING_LUA
    + """
local n = next_number(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 0)
local message = '{"t":"c","seq":' .. string.format('%d', n) .. ',"c":' .. ARGV[3] .. '}'
for i = 2, #KEYS do redis.call('SPUBLISH', KEYS[i], message) end
return n
"""
)
"""What a partition's write script does for the bus: number a change, publish it."""


def _body(author: str, post: int) -> bytes:
    return orjson.dumps(
        {"log": f"u:{author}", "kind": "post.created", "created_at": 0, "author": author,
         "post": post, "root": None, "reply_to": None, "tags": [], "recipient": None,
         "data": {"id": post}, "origin": None}
    )  # fmt: skip


class Writer:
    """Commits changes the way partition scripts do, on the author's partition."""

    def __init__(self, client: ClusterClient) -> None:
        self._client = client
        self._commit = client.register_script(_COMMIT)

    async def post(self, author: str, *more: RouteKey) -> int:
        """Commit a post by ``author``, published on its followers' key (and ``more`` keys
        of the same partition); its number."""
        part = PARTS.of_user(author)
        channels = [c for key in (FollowersKey(author), *more) for p, c in PARTS.channels(key)
                    if p == part]  # fmt: skip
        keys = [PARTS.counter(part), *channels]
        return int(await self._commit(keys=keys, args=[part, PARTS.count, _body(author, 0)]))

    async def follow(self, follower: str, followee: str, after: int) -> None:
        """Publish a follow's control message on the follower's devices channel."""
        [(_, channel)] = PARTS.channels(DevicesKey(follower))
        payload = {"t": "f", "follower": follower, "followee": followee, "on": True}
        await self._client.spublish(channel, orjson.dumps({**payload, "after": after}))


class Heard:
    """What one bus handed on."""

    def __init__(self, bus: ClusterBus) -> None:
        self.messages: list[BusMessage] = []
        bus.subscribe(self.messages.append)

    def changes(self) -> list[int]:
        return [m.seq for m in self.messages if isinstance(m, Change)]


@pytest.fixture
async def bus(client: ClusterClient) -> AsyncIterator[ClusterBus]:
    node = ClusterBus(client, PARTS)
    node.start()
    yield node
    await node.close()


def _authors_in_distinct_partitions(count: int) -> list[str]:
    found: dict[int, str] = {}
    for n in range(1000):
        found.setdefault(PARTS.of_user(f"user{n}"), f"user{n}")
    assert len(found) >= count
    return list(found.values())[:count]


async def test_changes_of_every_partition_arrive_once_in_increasing_order(
    bus: ClusterBus, client: ClusterClient
) -> None:
    authors = _authors_in_distinct_partitions(6)
    heard = Heard(bus)
    for author in authors[:4]:  # the other two are heard on the public stream only
        bus.watch(FollowersKey(author))
    bus.watch(StreamKey(PUBLIC))
    await bus.settled()
    assert bus.connected
    writer = Writer(client)
    rng = random.Random(7)
    posted = []
    for _ in range(200):
        author = rng.choice(authors)
        posted.append((author, await writer.post(author, StreamKey(PUBLIC))))  # a repeat
    numbers = [number for _, number in posted]
    await until(lambda: heard.changes() == sorted(numbers), "all 200 changes, in order")
    assert all(PARTS.of_number(number) == PARTS.of_user(author) for author, number in posted)
    assert bus.released >= max(numbers)


async def test_a_change_nobody_watches_is_not_handed_on_and_holds_nothing_up(
    bus: ClusterBus, client: ClusterClient
) -> None:
    watched, unwatched = _authors_in_distinct_partitions(2)
    heard = Heard(bus)
    bus.watch(FollowersKey(watched))
    await bus.settled()
    writer = Writer(client)
    await writer.post(unwatched)
    mine = await writer.post(watched)
    await until(lambda: heard.changes() == [mine], "the watched author's post")


async def test_a_follow_keeps_its_place_after_its_partitions_last_change(
    bus: ClusterBus, client: ClusterClient
) -> None:
    alice, bob = _authors_in_distinct_partitions(2)
    heard = Heard(bus)
    bus.watch(FollowersKey(alice))
    bus.watch(DevicesKey(alice))
    bus.watch(FollowersKey(bob))
    await bus.settled()
    writer = Writer(client)
    first = await writer.post(alice)
    await writer.follow(alice, bob, first)
    later = await writer.post(bob)
    await until(lambda: len(heard.messages) == 3, "two posts and the follow")
    kinds: list[Any] = [type(m) for m in heard.messages]
    assert kinds[0] is Change and heard.changes() == sorted([first, later])
    follow_at = kinds.index(FollowChange)
    assert heard.messages[follow_at - 1] == next(
        m for m in heard.messages if isinstance(m, Change) and m.seq == first
    )


async def test_presence_reaches_another_node_watching_the_user(client: ClusterClient) -> None:
    sender, watcher = ClusterBus(client, PARTS), ClusterBus(client, PARTS)
    sender.start()
    watcher.start()
    try:
        heard = Heard(watcher)
        watcher.watch(FollowersKey("carol"))
        await watcher.settled()
        await sender.publish(PresenceChange("carol", online=True))
        await until(lambda: heard.messages == [PresenceChange("carol", True)], "presence")
    finally:
        await sender.close()
        await watcher.close()


async def test_a_stream_watches_every_partition_and_a_thread_one() -> None:
    assert len(PARTS.channels(StreamKey(PUBLIC))) == PARTS.count
    assert len(PARTS.channels(StreamKey(Stream.parse("tag:tea")))) == PARTS.count
    [(part, channel)] = PARTS.channels(StreamKey(Stream.parse("thread:42")))
    assert part == 42 % PARTS.count and channel.endswith("c:s:thread:42")


async def test_a_killed_master_costs_a_gap_and_the_bus_goes_on_with_its_replica(
    redis_cluster: RedisCluster, bus: ClusterBus, client: ClusterClient
) -> None:
    alice, bob = _authors_in_distinct_partitions(2)
    heard = Heard(bus)
    bus.watch(FollowersKey(alice))
    bus.watch(FollowersKey(bob))
    await bus.settled()
    writer = Writer(client)
    before = await writer.post(alice)
    await until(lambda: heard.changes() == [before], "the post before the kill")
    node = client.get_node_from_key(PARTS.counter(PARTS.of_user(alice)))
    assert node is not None
    redis_cluster.kill(int(node.port))
    await until(lambda: not bus.connected, "the bus noticing the dead master")
    await asyncio.to_thread(redis_cluster.wait_failover)
    await until(lambda: bus.connected, "the bus reconnected to the new master", within=20)
    assert any(isinstance(m, BusGap) and m.after >= before for m in heard.messages)
    fresh = ClusterClient.from_url(redis_cluster.url, decode_responses=True)
    try:
        after = [await Writer(fresh).post(author) for author in (alice, bob)]
    finally:
        await fresh.aclose()
    await until(lambda: heard.changes() == [before, *sorted(after)], "posts after the failover")
