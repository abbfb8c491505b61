"""What only the shared Redis backend promises: presence across nodes, dead-node sweeping,
merge on read for big authors, and keys hash-tagged per user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from hub.backends.bundle import Backends, open_redis
from hub.backends.redis_presence import RedisPresence
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
