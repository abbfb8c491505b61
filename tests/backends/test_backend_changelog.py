"""ChangeLog contract: append, head, read_since with interests, retention and resync."""

from __future__ import annotations

from hub.backends.base import ChangeLog
from hub.records import Interest
from tests.backends.backend_harness import (
    Backends,
    Factory,
    interest,
    notification_change,
    post_change,
)

MINUTE = 60_000


async def seqs(log: ChangeLog, after: int, wanted: Interest, limit: int = 100) -> list[int] | None:
    """The sequence numbers read_since answers, or None."""
    found = await log.read_since(after, wanted, limit)
    return None if found is None else [change.seq for change in found]


async def test_append_assigns_increasing_seqs_and_keeps_payload(backend: Backends) -> None:
    log = backend.changelog
    assert await log.head() == 0
    first = await log.append([post_change("ann", 1, tags=("x",)), notification_change("bob")])
    second = await log.append([post_change("ann", 2)])
    assert [c.seq for c in first + second] == [1, 2, 3] and await log.head() == 3
    replayed = await log.read_since(0, interest(authors=("ann",), tags=("x",)), 10)
    assert replayed == [first[0], second[0]]
    assert replayed[0].data == {"id": 1, "author": "ann"} and replayed[0].tags == ("x",)


async def test_read_since_filters_by_interest_in_seq_order(backend: Backends) -> None:
    log = backend.changelog
    await log.append(
        [
            post_change("ann", 1),
            post_change("bob", 2, tags=("py",)),
            post_change("cat", 3, root=1),
            notification_change("ann"),
            notification_change("bob"),
            post_change("dan", 4),
        ]
    )
    assert await seqs(log, 0, interest()) == [1, 4]
    assert await seqs(log, 0, interest(authors=("ann", "dan"))) == [1, 4, 6]
    assert await seqs(log, 0, interest(tags=("py",))) == [1, 2, 4]
    assert await seqs(log, 0, interest(threads=(1,))) == [1, 3, 4]
    assert await seqs(log, 0, interest(public=True)) == [1, 2, 3, 4, 6]
    assert await seqs(log, 4, interest("bob", ("bob",))) == [5]
    assert await seqs(log, 6, interest(public=True)) == []


async def test_read_since_gives_up_over_the_limit(backend: Backends) -> None:
    log = backend.changelog
    await log.append([post_change("ann", i) for i in range(1, 6)])
    assert await seqs(log, 0, interest(), limit=5) == [1, 2, 3, 4, 5]
    assert await seqs(log, 0, interest(), limit=4) is None


async def test_cursor_beyond_head_needs_resync(backend: Backends) -> None:
    await backend.changelog.append([post_change("ann", 1)])
    assert await seqs(backend.changelog, 2, interest()) is None


async def test_prune_by_age_and_per_log_count(make_backend: Factory) -> None:
    log = (await make_backend(retention_seconds=60, retention_per_log=2)).changelog
    await log.append([post_change("ann", i, at=0) for i in range(1, 5)])  # seqs 1-4, old
    await log.append([post_change("bob", 5, at=0)])  # 5: old, but among bob's newest 2
    await log.append([post_change("ann", 6, at=MINUTE)])  # 6: young
    assert await log.prune(MINUTE - 1) == 0  # nothing is a minute old yet
    assert await log.prune(MINUTE) == 3  # ann's 1, 2, 3: old and not among her newest 2
    assert await log.prune(MINUTE) == 0
    everyone = interest(public=True)
    assert await seqs(log, 3, everyone) == [4, 5, 6]
    assert await log.head() == 6


async def test_resync_exactly_when_something_relevant_was_pruned(make_backend: Factory) -> None:
    log = (await make_backend(retention_seconds=60, retention_per_log=1)).changelog
    await log.append([post_change("ann", 1), post_change("ann", 2)])  # 1 will be pruned
    await log.append([notification_change("cat"), notification_change("cat")])  # 3 pruned
    await log.append([post_change("bob", 5)])
    assert await log.prune(MINUTE) == 2
    # ann's log lost seq 1: resuming before it needs a resync, from it on does not
    assert await seqs(log, 0, interest("dan", ("ann",))) is None
    assert await seqs(log, 1, interest("dan", ("ann",))) == [2]
    # bob's log lost nothing
    assert await seqs(log, 0, interest("dan", ("bob",))) == [5]
    # cat's notifications lost seq 3, only cat cares
    assert await seqs(log, 2, interest("cat", ("bob",))) is None
    assert await seqs(log, 3, interest("cat", ("bob",))) == [4, 5]
    # a public, tag or thread stream may match any post log
    assert await seqs(log, 0, interest("dan", ("bob",), public=True)) is None
    assert await seqs(log, 0, interest("dan", ("bob",), tags=("x",))) is None
    assert await seqs(log, 0, interest("dan", ("bob",), threads=(9,))) is None
    assert await seqs(log, 1, interest("dan", ("bob",), public=True)) == [2, 5]


async def test_seqs_are_not_reused_after_pruning_everything_old(make_backend: Factory) -> None:
    log = (await make_backend(retention_seconds=60, retention_per_log=1)).changelog
    await log.append([post_change("ann", 1), post_change("ann", 2)])
    await log.prune(MINUTE)
    (third,) = await log.append([post_change("ann", 3)])
    assert third.seq == 3 and await log.head() == 3
