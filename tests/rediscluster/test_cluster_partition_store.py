"""The store's write scripts in one partition of a real Redis Cluster (docs/cluster.md):
every key they touch is in the partition's slot, they number posts and changes as the
partition's, and publish on its shard channels, where the sharded bus hears them in
order. (Writes that span partitions are not built yet: docs/cluster.md section 6.)"""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from hub.backends.partitions import Partitions
from hub.backends.redis_cluster_bus import ClusterBus
from hub.backends.redis_link import Keys
from hub.backends.redis_store import RedisStore
from hub.names import PUBLIC, FollowersKey, StreamKey
from hub.records import Change, ChangeKind
from hub.routing import route_keys
from tests.waiting import until

PARTS = Partitions(8)


def users_of(part: int, count: int) -> list[str]:
    """``count`` user ids that live in partition ``part``."""
    found = [f"user{n}" for n in range(5000) if PARTS.of_user(f"user{n}") == part]
    return found[:count]


async def test_a_partitions_store_writes_in_its_slot_and_the_bus_hears_it(
    client: ClusterClient,
) -> None:
    part = 5
    keys = Keys(PARTS.namespace(part))
    store = RedisStore(client, client, keys, 100, route_keys, partition=(part, PARTS.count))
    bus = ClusterBus(client, PARTS)
    heard: list[Change] = []
    bus.subscribe(lambda m: heard.append(m) if isinstance(m, Change) else None)
    bus.start()
    try:
        alice, bob = users_of(part, 2)
        bus.watch(FollowersKey(alice))
        bus.watch(StreamKey(PUBLIC))
        await bus.settled()
        for user in (alice, bob):
            await store.ensure_profile(user, 1)
        first = await store.create_post(alice, "tea #leaves", None, None, ["leaves"], [], [], 2)
        post = first.value
        assert PARTS.of_post(post.id) == part  # numbered as the partition's
        assert [PARTS.of_number(c.seq) for c in first.changes] == [part]
        liked = await store.like(bob, post.id, alice, 3)
        assert liked.value == (True, 1)
        edited = await store.edit_post(post.id, "green tea #leaves", ["leaves"], [], 4)
        assert edited.value.text == "green tea #leaves"
        assert (await store.hashtag_page("leaves", None, 10)).items[0].id == post.id
        assert (await store.user_page(alice, None, 10)).items[0].text == "green tea #leaves"

        slot = key_slot(PARTS.counter(part).encode())
        written = [k async for k in client.scan_iter(match=f"{PARTS.namespace(part)}*")]
        assert written and {key_slot(k.encode()) for k in written} == {slot}

        await until(lambda: len(heard) >= 2, "the post and its edit, live")
        assert [c.kind for c in heard] == [ChangeKind.POST_CREATED, ChangeKind.POST_EDITED]
        assert [c.seq for c in heard] == [first.changes[0].seq, edited.changes[0].seq]
        assert liked.changes[0].kind == ChangeKind.NOTIFICATION  # on alice's devices key
    finally:
        await bus.close()
