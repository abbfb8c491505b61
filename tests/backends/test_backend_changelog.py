"""ChangeLog contract: append, head, read_since with interests, retention and resync.

Sequence numbers are only promised to increase (dense on one Redis and SQLite, spaced by
partition on a cluster), so the tests name a change by its place among those appended
(``s[i]``: the sequence number of the i-th change appended) rather than by its number:
one ``append`` numbers its changes in the order given, as does one log."""

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
    s = [c.seq for c in first + second]  # increasing in one call and in one log
    assert 0 < s[0] < s[1] and s[0] < s[2] and await log.head() == max(s)
    replayed = await log.read_since(0, interest(authors=("ann",), tags=("x",)), 10)
    assert replayed == [first[0], second[0]]
    assert replayed[0].data == {"id": 1, "author": "ann"} and replayed[0].tags == ("x",)


async def test_read_since_filters_by_interest_in_seq_order(backend: Backends) -> None:
    log = backend.changelog
    appended = await log.append(
        [
            post_change("ann", 1),
            post_change("bob", 2, tags=("py",)),
            post_change("cat", 3, root=1),
            notification_change("ann"),
            notification_change("bob"),
            post_change("dan", 4),
        ]
    )
    s = [c.seq for c in appended]
    assert await seqs(log, 0, interest()) == [s[0], s[3]]
    assert await seqs(log, 0, interest(authors=("ann", "dan"))) == [s[0], s[3], s[5]]
    assert await seqs(log, 0, interest(tags=("py",))) == [s[0], s[1], s[3]]
    assert await seqs(log, 0, interest(threads=(1,))) == [s[0], s[2], s[3]]
    assert await seqs(log, 0, interest(public=True)) == [s[0], s[1], s[2], s[3], s[5]]
    assert await seqs(log, s[3], interest("bob", ("bob",))) == [s[4]]
    assert await seqs(log, s[5], interest(public=True)) == []


async def test_read_since_gives_up_over_the_limit(backend: Backends) -> None:
    log = backend.changelog
    appended = await log.append([post_change("ann", i) for i in range(1, 6)])
    assert await seqs(log, 0, interest(), limit=5) == [c.seq for c in appended]
    assert await seqs(log, 0, interest(), limit=4) is None


async def test_cursor_beyond_head_needs_resync(backend: Backends) -> None:
    (only,) = await backend.changelog.append([post_change("ann", 1)])
    assert await seqs(backend.changelog, only.seq, interest()) == []
    assert await seqs(backend.changelog, 10**12, interest()) is None  # from another world


async def test_prune_by_age_and_per_log_count(make_backend: Factory) -> None:
    log = (await make_backend(retention_seconds=60, retention_per_log=2)).changelog
    appended = await log.append(
        [
            *(post_change("ann", i, at=0) for i in range(1, 5)),  # s[0-3]: old
            post_change("bob", 5, at=0),  # s[4]: old, but among bob's newest 2
            post_change("ann", 6, at=MINUTE),  # s[5]: young
        ]
    )
    s = [c.seq for c in appended]
    assert await log.prune(MINUTE - 1) == 0  # nothing is a minute old yet
    assert await log.prune(MINUTE) == 3  # ann's first 3: old and not among her newest 2
    assert await log.prune(MINUTE) == 0
    everyone = interest(public=True)
    assert await seqs(log, s[2], everyone) == [s[3], s[4], s[5]]
    assert await log.head() == s[5]


async def test_resync_exactly_when_something_relevant_was_pruned(make_backend: Factory) -> None:
    log = (await make_backend(retention_seconds=60, retention_per_log=1)).changelog
    appended = await log.append(
        [
            post_change("ann", 1),  # s[0]: pruned
            post_change("ann", 2),
            notification_change("cat"),  # s[2]: pruned
            notification_change("cat"),
            post_change("bob", 5),
        ]
    )
    s = [c.seq for c in appended]
    assert await log.prune(MINUTE) == 2
    # ann's log lost s[0]: resuming before it needs a resync, from it on does not
    assert await seqs(log, 0, interest("dan", ("ann",))) is None
    assert await seqs(log, s[0], interest("dan", ("ann",))) == [s[1]]
    # bob's log lost nothing
    assert await seqs(log, 0, interest("dan", ("bob",))) == [s[4]]
    # cat's notifications lost s[2], only cat cares
    assert await seqs(log, s[1], interest("cat", ("bob",))) is None
    assert await seqs(log, s[2], interest("cat", ("bob",))) == [s[3], s[4]]
    # a public, tag or thread stream may match any post log
    assert await seqs(log, 0, interest("dan", ("bob",), public=True)) is None
    assert await seqs(log, 0, interest("dan", ("bob",), tags=("x",))) is None
    assert await seqs(log, 0, interest("dan", ("bob",), threads=(9,))) is None
    assert await seqs(log, s[0], interest("dan", ("bob",), public=True)) == [s[1], s[4]]


async def test_seqs_are_not_reused_after_pruning_everything_old(make_backend: Factory) -> None:
    log = (await make_backend(retention_seconds=60, retention_per_log=1)).changelog
    first = await log.append([post_change("ann", 1), post_change("ann", 2)])
    await log.prune(MINUTE)
    (third,) = await log.append([post_change("ann", 3)])
    assert third.seq > first[1].seq and await log.head() == third.seq
