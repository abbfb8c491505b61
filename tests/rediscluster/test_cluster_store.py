"""The cluster store's writes that span partitions, on a real Redis Cluster
(docs/cluster.md 4): each step in its own partition's slot, the steps of a write in one
order in the merged stream, and what the steps leave behind readable from either side.
(The backend contract suite runs every Store, ChangeLog, Bus and Presence test on a
cluster too: ``tests/backends``.)"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from hub.backends.base import FollowChange
from hub.backends.bundle import Backends, open_redis_cluster
from hub.backends.partitions import Partitions
from hub.names import PUBLIC, DevicesKey, FollowersKey, StreamKey
from hub.records import Change, ChangeKind, Notice
from tests.backends.backend_harness import route_keys
from tests.backends.test_backend_bus_presence import Collector, watching
from tests.redisclusterproc import RedisCluster

PARTS = 4
_namespaces = itertools.count(1)


def user_in(part: int, skip: int = 0) -> str:
    """A user id that lives in partition ``part`` (the ``skip``-th such)."""
    parts = Partitions(PARTS)
    return [f"u{n}" for n in range(1000) if parts.of_user(f"u{n}") == part][skip]


class Nodes:
    """Opens backend bundles ("nodes") on one fresh namespace of the test cluster."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.namespace = f"cs{next(_namespaces)}:"
        self.opened: list[Backends] = []

    async def open(self) -> Backends:
        """One more node."""
        opened = await open_redis_cluster(
            self.cluster.url,
            route_keys=route_keys,
            retention_seconds=900,
            retention_per_log=1000,
            fanout_limit=3,
            presence_ttl=1.5,
            partitions=PARTS,
            namespace=self.namespace,
        )
        self.opened.append(opened)
        return opened


@pytest.fixture
async def nodes(redis_cluster: RedisCluster) -> AsyncIterator[Nodes]:
    opened = Nodes(redis_cluster)
    yield opened
    for backends in opened.opened:
        await backends.close()


@pytest.fixture
async def backend(nodes: Nodes) -> Backends:
    return await nodes.open()


async def test_a_reply_across_partitions_comes_after_its_parent_and_counts_there(
    nodes: Nodes,
) -> None:
    first, second = await nodes.open(), await nodes.open()
    store = first.store
    ann, bob, cat = user_in(1), user_in(2), user_in(3)
    for user in (ann, bob, cat):
        await store.ensure_profile(user, 1)
    got = Collector()
    first.bus.subscribe(got)
    await watching(first, FollowersKey(ann), FollowersKey(bob), DevicesKey(ann), DevicesKey(cat))
    for n in range(20):  # ann's partition runs far ahead of bob's
        root = (await store.create_post(ann, f"root {n}", None, None, (), (), (), 2)).value
    # a node that saw none of it: the reply still numbers above its parent's partition
    notices = (Notice(ann, "reply"), Notice(cat, "mention"))
    reply = await second.store.create_post(
        bob, f"re @{cat}", root.id, root.id, (), (cat,), notices, 3
    )
    kinds = [(c.kind, c.recipient) for c in reply.changes]
    assert kinds[0] == (ChangeKind.POST_CREATED, None)
    seqs = [c.seq for c in reply.changes]
    assert seqs == sorted(seqs) and seqs[0] > root.id  # after the parent, in step order
    parent = await store.get_post(root.id)
    assert parent is not None and parent.replies == 1
    assert [p.id for p in (await store.replies_page(root.id, None, 10)).items] == [reply.value.id]
    heard = await got.take(20 + len(reply.changes))
    numbers = [m.seq for m in heard if isinstance(m, Change)]
    assert numbers == sorted(numbers)  # one order: the roots, the reply, its count, notes
    assert (await store.notifications_page(cat, None, 10)).items[0].post == reply.value.id
    assert (await store.unread_count(ann)) == 1

    gone = await second.store.delete_post(reply.value.id, 4)
    assert [c.kind for c in gone.changes] == [ChangeKind.POST_DELETED, ChangeKind.POST_COUNTS]
    parent = await store.get_post(root.id)
    assert parent is not None and parent.replies == 0


async def test_posts_number_in_the_order_they_are_written_whatever_their_partition(
    backend: Backends,
) -> None:
    store = backend.store
    writers = [user_in(part) for part in range(PARTS)] * 3
    for user in set(writers):
        await store.ensure_profile(user, 1)
    ids = [(await store.create_post(u, "hi", None, None, (), (), (), 2)).value.id for u in writers]
    assert ids == sorted(ids)  # each write numbers above what this node saw
    page = await store.public_page(None, 100)
    assert [p.id for p in page.items] == ids[::-1]


async def test_follow_like_block_and_mute_across_partitions_read_the_same_from_both_sides(
    backend: Backends,
) -> None:
    store = backend.store
    ann, bob = user_in(0), user_in(1)
    for user in (ann, bob):
        await store.ensure_profile(user, 1)
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, DevicesKey(ann), DevicesKey(bob), StreamKey(PUBLIC))
    post = (await store.create_post(bob, "hello", None, None, (), (), (), 2)).value
    followed = await store.follow(ann, bob, 3)
    assert followed.value is True and [c.recipient for c in followed.changes] == [bob]
    assert await store.followee_ids(ann) == [bob]
    assert [p.id for p in (await store.followers_page(bob, None, 10)).items] == [ann]
    assert [p.id for p in (await store.home_page(ann, None, 10)).items] == [post.id]  # back-filled
    later = (await store.create_post(bob, "again", None, None, (), (), (), 4)).value
    assert [p.id for p in (await store.home_page(ann, None, 10)).items] == [later.id, post.id]

    liked = await store.like(ann, post.id, bob, 5)
    assert liked.value == (True, 1) and [c.recipient for c in liked.changes] == [bob]
    assert await store.liked_among(ann, [post.id, later.id]) == {post.id}

    assert (await store.mute(ann, bob, 100, 6)).value is True
    assert (await store.barriers(bob, [ann], 50)).muting == {ann}  # bob's side knows
    assert await store.prune_mutes(100) == 1
    assert (await store.barriers(bob, [ann], 50)).muting == frozenset()

    assert (await store.block(bob, ann, 7)).value is True
    assert await store.followee_ids(ann) == []
    assert (await store.barriers(ann, [bob], 8)).blocked == {bob}  # ann's side knows
    profiles = [await store.get_profile(u) for u in (ann, bob)]
    assert [(p.following, p.followers) for p in profiles if p] == [(0, 0), (0, 0)]
    assert (await store.unblock(bob, ann)).value is True
    assert (await store.barriers(ann, [bob], 9)).blocked == frozenset()


async def test_every_key_of_a_cluster_store_lives_in_a_partition_slot(nodes: Nodes) -> None:
    backend = await nodes.open()
    store = backend.store
    users = [user_in(part, skip) for part in range(PARTS) for skip in range(2)]
    for user in users:
        await store.ensure_profile(user, 1)
    for author, reader in zip(users, users[1:] + users[:1], strict=True):
        await store.follow(reader, author, 2)
        made = (await store.create_post(author, f"#t @{reader}", None, None, ("t",), (reader,),
                                        (Notice(reader, "mention"),), 3)).value  # fmt: skip
        await store.like(reader, made.id, author, 4)
        await store.create_post(
            reader, "re", made.id, made.id, (), (), (Notice(author, "reply"),), 5
        )
        await store.mute(author, reader, 10, 6)
    await store.block(users[0], users[5], 7)
    await store.prune_mutes(10)
    await store.prune_notifications(0, 1)
    await backend.changelog.prune(10**13)
    namespace = nodes.namespace
    parts = Partitions(PARTS, namespace)
    slots = {key_slot(parts.counter(part).encode()) for part in range(PARTS)}
    client = ClusterClient.from_url(nodes.cluster.url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=1000)]
    finally:
        await client.aclose()
    assert len(keys) > 50
    stray = [key for key in keys if key_slot(key) not in slots]
    assert stray == [f"{namespace}partitions".encode()]  # the count, read once at start


async def test_a_follow_takes_effect_after_everything_its_follower_may_have_seen(
    nodes: Nodes,
) -> None:
    """The follower's partition runs ahead of the followee's: the follow's ``after`` is the
    higher of the two, so the merge hands it on before any change numbered above it and
    the catch-up it starts replays nothing the follower's sessions already got live (no
    cursor goes back)."""
    first, second = await nodes.open(), await nodes.open()
    ann, bob, busy = user_in(0), user_in(1), user_in(0, 1)
    for user in (ann, bob, busy):
        await first.store.ensure_profile(user, 1)
    for n in range(20):  # ann's partition runs far ahead, through a node the other never saw
        top = (await first.store.create_post(busy, f"busy {n}", None, None, (), (), (), 2)).value
    got = Collector()
    second.bus.subscribe(got)
    await watching(second, DevicesKey(ann))
    await second.store.follow(ann, bob, 3)
    heard = [m for m in await got.take(1) if isinstance(m, FollowChange)]
    assert heard and heard[0].after >= top.id  # at or above ann's partition's counter
