"""The ChangeLog over the partitions of a real Redis Cluster (docs/cluster.md 2-3): each
change appended in its log owner's partition and numbered there, one head that closes
every partition, and reads that merge the partitions' answers in one order."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from hub.backends.partitions import Partitions
from hub.backends.redis_cluster_changelog import ClusterChangeLog
from hub.backends.redis_partitions import PartitionCounters
from hub.routing import route_keys
from tests.backends.backend_harness import interest, notification_change, post_change

PARTS = Partitions(8)


def one_per_partition(count: int) -> list[str]:
    """``count`` user ids, each in a partition of its own."""
    found: dict[int, str] = {}
    for n in range(1000):
        found.setdefault(PARTS.of_user(f"u{n}"), f"u{n}")
    return list(found.values())[:count]


@pytest.fixture
async def client(client: ClusterClient) -> ClusterClient:
    """The module's cluster client, every master emptied: each test starts a new world."""
    await client.flushall()
    return client


@pytest.fixture
def changelog(client: ClusterClient) -> ClusterChangeLog:
    return ClusterChangeLog(client, PARTS, route_keys)


async def test_changes_are_numbered_in_their_owners_partitions_and_read_in_one_order(
    changelog: ClusterChangeLog,
) -> None:
    ann, bob, cat = one_per_partition(3)
    assert await changelog.head() == 0
    written = []
    for n in range(12):  # interleaved authors, and a notification for ann
        author = (ann, bob, cat)[n % 3]
        written += await changelog.append([post_change(author, 100 + n, at=n)])
    written += await changelog.append([notification_change(ann, at=99)])
    assert all(PARTS.of_number(c.seq) == PARTS.of_user(c.log[2:]) for c in written)

    follows_ann_bob = interest(ann, (ann, bob))
    found = await changelog.read_since(0, follows_ann_bob, 100)
    assert found is not None
    expected = sorted(c.seq for c in written if c.author in {ann, bob} or c.recipient == ann)
    assert [c.seq for c in found] == expected
    everything = await changelog.read_since(0, interest(cat, (cat,), public=True), 100)
    assert everything is not None
    assert [c.seq for c in everything] == sorted(c.seq for c in written if c.recipient is None)

    middle = sorted(expected)[3]
    later = await changelog.read_since(middle, follows_ann_bob, 100)
    assert later is not None and [c.seq for c in later] == [s for s in expected if s > middle]
    assert await changelog.read_since(0, follows_ann_bob, 2) is None  # over the limit


async def test_the_head_closes_every_partition_up_to_it(
    changelog: ClusterChangeLog, client: ClusterClient
) -> None:
    (ann,) = one_per_partition(1)
    [change] = await changelog.append([post_change(ann, 1)])
    head = await changelog.head()
    assert head == change.seq
    counters = await PartitionCounters(client, PARTS).heads()
    assert min(counters) >= head  # no partition can number at or below the head again
    [later] = await changelog.append([post_change(one_per_partition(2)[1], 2)])
    assert later.seq > head
    assert await changelog.read_since(await changelog.head() + 100, interest(ann), 10) is None


async def test_prune_and_scrub_marks_add_up_over_the_partitions(
    client: ClusterClient,
) -> None:
    short = ClusterChangeLog(client, PARTS, route_keys, retention_seconds=0, retention_per_log=1)
    ann, bob = one_per_partition(2)
    for n in range(3):
        await short.append([post_change(ann, 10 + n, at=n), post_change(bob, 20 + n, at=n)])
    assert await short.prune(now=10**6) == 4  # each log keeps its newest one
    assert await short.read_since(0, interest(ann, (ann, bob)), 10) is None  # pruned: resync
    head = await short.head()
    assert await short.read_since(head, interest(ann, (ann, bob)), 10) == []
    assert await short.scrub_mark() == 0


async def test_concurrent_heads_share_rounds_and_none_answers_below_a_prior_write(
    changelog: ClusterChangeLog,
) -> None:
    counters = changelog._counters  # the rounds are counted where they read the counters
    real = counters.heads
    rounds = 0

    async def counted() -> list[int]:
        nonlocal rounds
        rounds += 1
        return await real()

    counters.heads = counted  # type: ignore[method-assign]
    ann, bob = one_per_partition(2)
    [first] = await changelog.append([post_change(ann, 1)])
    heads = await asyncio.gather(*(changelog.head() for _ in range(50)))
    assert rounds <= 2 and set(heads) == {heads[0]} and heads[0] >= first.seq
    [second] = await changelog.append([post_change(bob, 2)])
    assert await changelog.head() >= second.seq  # a call after a write starts a new round
    assert rounds <= 3
