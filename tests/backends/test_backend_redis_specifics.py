"""What only the shared Redis backend promises: presence across nodes, dead-node sweeping,
merge on read for big authors, keys hash-tagged per user, a bus that settles the keys
watched so far while a storm of sign-ins keeps watching new ones, and heartbeats that a
slow sweep (queued behind such a storm) does not hold up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from hub.backends.base import BusMessage
from hub.backends.bundle import Backends, open_redis
from hub.backends.redis_presence import RedisPresence
from hub.names import FollowersKey
from hub.records import PresenceChange
from tests.backends.backend_harness import redis_url, route_keys

FANOUT_LIMIT = 3


@pytest.fixture
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Backends, Backends]]:
    """Two backend bundles on one namespace, as two nodes would have."""
    namespace = f"pair{tmp_path.name}:"
    opened = [
        await open_redis(
            redis_url(tmp_path),
            route_keys=route_keys,
            retention_seconds=60,
            retention_per_log=100,
            fanout_limit=FANOUT_LIMIT,
            presence_ttl=30,
            namespace=namespace,
        )
        for _ in range(2)
    ]
    yield opened[0], opened[1]
    for backends in opened:
        await backends.close()


async def test_online_until_the_last_node_lets_go(two_nodes: tuple[Backends, Backends]) -> None:
    a, b = (node.presence for node in two_nodes)
    assert await a.connect("ann")
    assert not await b.connect("ann")  # already online through node a
    assert await b.online(["ann"]) == {"ann"} == await a.online(["ann"])
    assert not await a.disconnect("ann")
    assert await a.online(["ann"]) == {"ann"}
    assert await b.disconnect("ann")
    assert await a.online(["ann"]) == set() == await b.online(["ann"])


async def test_a_dead_nodes_users_are_swept_offline_once(
    two_nodes: tuple[Backends, Backends], tmp_path: Path
) -> None:
    a, b = (node.presence for node in two_nodes)
    assert isinstance(a, RedisPresence) and isinstance(b, RedisPresence)
    await a.connect("ann")
    await a.connect("bob")
    await b.connect("bob")
    admin = aioredis.Redis.from_url(redis_url(tmp_path))
    try:  # node a misses its heartbeats: its expiry lies in the past
        await admin.zadd(f"pair{tmp_path.name}:nodes", {a.node_id: 0})
    finally:
        await admin.aclose()
    assert await b.online(["ann", "bob"]) == {"bob"}
    assert await b.beat() == [PresenceChange("ann", False)]  # bob is still on node b
    assert await b.beat() == []


async def test_big_authors_are_merged_on_read(
    two_nodes: tuple[Backends, Backends], tmp_path: Path
) -> None:
    store = two_nodes[0].store
    for user in ("big", "f1", "f2", "f3", "small"):
        await store.ensure_profile(user, 0)
    for follower in ("f1", "f2", "f3"):
        await store.follow(follower, "big", 0)
    await store.follow("f1", "small", 0)
    posts = [(await store.create_post(author, "x", None, None, (), (), (), 1)).value
             for author in ("small", "big", "small", "big")]  # fmt: skip
    page = await store.home_page("f1", None, 10)
    assert [p.id for p in page.items] == [p.id for p in reversed(posts)]
    assert [p.id for p in (await store.home_page("f2", None, 1)).items] == [posts[3].id]
    await store.unfollow("f1", "small")
    assert [p.author for p in (await store.home_page("f1", None, 10)).items] == ["big", "big"]
    ns = f"pair{tmp_path.name}:"
    admin = aioredis.Redis.from_url(redis_url(tmp_path), decode_responses=True)
    try:
        assert await admin.zcard(ns + "{u:f2}:home") == 0  # nothing was fanned out to f2
        assert await admin.zcard(ns + "{u:f1}:home") == 2  # small's posts were
        f1_keys = [key async for key in admin.scan_iter(match=ns + "*f1*")]
        assert f1_keys and all(key.startswith(ns + "{u:f1}:") for key in f1_keys)
    finally:
        await admin.aclose()


async def test_settled_waits_for_the_watches_so_far_not_for_later_ones(
    two_nodes: tuple[Backends, Backends],
) -> None:
    """In a sign-in storm new keys are watched every loop turn: each sign-in waits for
    its own keys (it used to wait until every key watched by anyone was confirmed, which
    never happened while the storm lasted: "the bus has not subscribed yet")."""
    bus, other = two_nodes[0].bus, two_nodes[1].bus
    received: asyncio.Queue[BusMessage] = asyncio.Queue()
    bus.subscribe(received.put_nowait)
    for i in range(100):
        bus.watch(FollowersKey(f"early{i}"))
    storming = asyncio.Event()
    storming.set()

    async def storm() -> int:
        watched = 0
        while storming.is_set():
            bus.watch(FollowersKey(f"late{watched}"))
            watched += 1
            await asyncio.sleep(0)  # one new key per loop turn, for as long as it takes
        return watched

    sign_ins = asyncio.create_task(storm())
    try:
        async with asyncio.timeout(10):
            await bus.settled()
    finally:
        storming.clear()
        late = await sign_ins
    assert late > 0, "the storm had begun"
    await other.publish(PresenceChange("early99", True))
    async with asyncio.timeout(10):
        assert await received.get() == PresenceChange("early99", True)


async def test_a_slow_sweep_does_not_hold_up_the_renewals(tmp_path: Path) -> None:
    """A sweep queues in the shared pool behind a storm of sign-ins; the renewals, which
    keep this node alive, must go on meanwhile (they waited for it: a busy live node
    lapsed, was swept, and its users were announced offline)."""
    namespace = f"slow{tmp_path.name}:"
    backends = await open_redis(
        redis_url(tmp_path),
        route_keys=route_keys,
        retention_seconds=60,
        retention_per_log=100,
        fanout_limit=FANOUT_LIMIT,
        presence_ttl=0.6,
        namespace=namespace,
    )
    presence = backends.presence
    assert isinstance(presence, RedisPresence)
    sweeping, release = asyncio.Event(), asyncio.Event()

    async def slow_sweep(keys: list[str], args: list[object]) -> list[str]:
        sweeping.set()
        await release.wait()
        return ["idle"]

    presence._sweep = slow_sweep
    admin = aioredis.Redis.from_url(redis_url(tmp_path))
    try:
        async with asyncio.timeout(10):
            await sweeping.wait()  # a beat is stuck in its sweep from now on
            expiries = {await admin.zscore(namespace + "nodes", presence.node_id)}
            while len(expiries) < 3:  # renewed twice more meanwhile
                expiries.add(await admin.zscore(namespace + "nodes", presence.node_id))
                await asyncio.sleep(0.05)  # polling Redis' state
    finally:
        release.set()
        await admin.aclose()
        await backends.close()
