"""Blocks and mutes in the store, the same on both backends.

A block ends the follows between the two users (with their counts) and publishes a
:class:`FollowChange` for each and a :class:`RelationChange` with its commit; a mute is
published to the muter's channel only; reads answer who blocks whom and who mutes
whom, and list both newest first with page cursors.
"""

from __future__ import annotations

import dataclasses

import pytest

from hub.backends.base import (
    BlockedWrite,
    BusMessage,
    CursorError,
    FollowChange,
    MissingRecord,
    Store,
)
from hub.names import DevicesKey
from hub.records import Barriers, Page, Relation, RelationChange, RelationKind, Relations
from tests.backends.backend_harness import Backends
from tests.backends.test_backend_bus_presence import Collector, watching

BLOCK, MUTE = RelationKind.BLOCK, RelationKind.MUTE


@pytest.fixture
async def store(backend: Backends) -> Store:
    """The store, with users ann, bob, cat and dan."""
    for user in ("ann", "bob", "cat", "dan"):
        await backend.store.ensure_profile(user, 1)
    return backend.store


async def _until(got: Collector, expected: RelationChange) -> list[BusMessage]:
    """The messages received up to a copy of ``expected`` (a shared bus sends one copy,
    with ``to`` set, on each user's channel)."""
    seen: list[BusMessage] = []
    while not seen or not (
        isinstance(seen[-1], RelationChange) and dataclasses.replace(seen[-1], to=None) == expected
    ):
        seen += await got.take(1)
    return seen


async def test_a_block_ends_follows_both_ways_and_publishes_with_its_commit(
    backend: Backends, store: Store
) -> None:
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, DevicesKey("ann"), DevicesKey("bob"))
    await store.follow("ann", "bob", 2)
    await store.follow("bob", "ann", 3)
    await store.follow("ann", "cat", 4)
    head = await backend.changelog.head()

    assert (await store.block("ann", "bob", 5)).value is True
    seen = await _until(got, RelationChange("ann", "bob", BLOCK, True))
    ended = [m for m in seen if isinstance(m, FollowChange) and not m.following]
    while len(ended) < 2:  # on a cluster the target's half publishes after the actor's
        ended += [m for m in await got.take(1) if isinstance(m, FollowChange)]
    now = await backend.changelog.head()
    assert {dataclasses.replace(m, after=head) for m in ended} == {
        FollowChange("ann", "bob", False, head),
        FollowChange("bob", "ann", False, head),
    }
    assert all(head <= m.after <= now for m in ended)  # the head at the block
    assert await store.followee_ids("ann") == ["cat"]
    assert await store.followee_ids("bob") == []
    ann, bob = await store.get_profile("ann"), await store.get_profile("bob")
    assert ann is not None and bob is not None
    assert (ann.following, ann.followers, bob.following, bob.followers) == (1, 0, 0, 0)

    assert (await store.block("ann", "bob", 6)).value is False  # idempotent, silent
    assert (await store.unblock("ann", "bob")).value is True
    seen = await _until(got, RelationChange("ann", "bob", BLOCK, False))
    assert all(m.on for m in seen[:-1] if isinstance(m, RelationChange))
    assert seen[-1].to in {None, "ann", "bob"}  # type: ignore[union-attr]
    assert (await store.unblock("ann", "bob")).value is False


async def test_relations_and_barriers_say_who_keeps_whom_away(store: Store) -> None:
    await store.block("ann", "bob", 1)
    await store.block("cat", "ann", 2)
    await store.mute("ann", "dan", None, 3)
    await store.mute("bob", "ann", 500, 4)
    await store.mute("dan", "ann", None, 5)

    assert await store.relations("ann", 100) == Relations(
        frozenset({"bob"}), frozenset({"cat"}), {"dan": None}
    )
    assert await store.relations("bob", 100) == Relations(
        frozenset(), frozenset({"ann"}), {"ann": 500}
    )
    assert (await store.relations("bob", 500)).muted == {}  # the mute ran out
    barriers = await store.barriers("ann", ["bob", "cat", "dan"], 100)
    assert barriers == Barriers(frozenset({"bob", "cat"}), frozenset({"bob", "dan"}))
    assert (await store.barriers("ann", ["bob", "dan"], 600)).muting == frozenset({"dan"})
    assert await store.barriers("ann", [], 100) == Barriers()

    await store.mute("ann", "dan", 900, 6)  # muting again replaces the end
    assert (await store.relations("ann", 100)).muted == {"dan": 900}
    assert (await store.unmute("ann", "dan")).value is True
    assert (await store.unmute("ann", "dan")).value is False
    assert (await store.relations("ann", 100)).muted == {}


async def test_a_mute_is_published_to_the_muter_only(backend: Backends, store: Store) -> None:
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, DevicesKey("ann"), DevicesKey("bob"))
    await store.mute("ann", "bob", 700, 1)
    await store.unmute("ann", "bob")
    seen = await _until(got, RelationChange("ann", "bob", MUTE, True, 700))
    seen += await _until(got, RelationChange("ann", "bob", MUTE, False))
    assert len(seen) == 2
    assert {m.to for m in seen if isinstance(m, RelationChange)} <= {None, "ann"}


async def test_block_and_mute_lists_page_newest_first(store: Store) -> None:
    for other in ("bob", "cat", "dan"):
        await store.block("ann", other, 1)
        await store.mute("ann", other, None if other != "cat" else 50, 1)
    first = await store.relations_page("ann", BLOCK, 100, None, 2)
    assert first.items == (Relation("dan"), Relation("cat"))
    assert first.next is not None
    rest = await store.relations_page("ann", BLOCK, 100, first.next, 2)
    assert (rest.items, rest.next) == ((Relation("bob"),), None)
    mutes = await store.relations_page("ann", MUTE, 10, None, 10)
    assert mutes.items == (Relation("dan"), Relation("cat", 50), Relation("bob"))
    later = await store.relations_page("ann", MUTE, 100, None, 10)
    assert later.items == (Relation("dan"), Relation("bob"))  # cat's mute ran out
    with pytest.raises(CursorError):
        await store.relations_page("ann", BLOCK, 100, "nope", 2)


async def test_relations_with_an_unknown_user_are_refused(store: Store) -> None:
    with pytest.raises(MissingRecord):
        await store.block("ann", "nobody", 1)
    with pytest.raises(MissingRecord):
        await store.mute("nobody", "ann", None, 1)


async def test_writes_across_a_block_are_refused_by_the_store_itself(store: Store) -> None:
    """The domain checks first; the store checks again in the write's own commit, so a
    block that lands in between still stops a follow, a reply or a like."""
    post = (await store.create_post("ann", "mine", None, None, (), (), (), 1)).value
    await store.block("ann", "bob", 2)
    with pytest.raises(BlockedWrite):
        await store.follow("bob", "ann", 3)
    with pytest.raises(BlockedWrite):
        await store.follow("ann", "bob", 3)
    with pytest.raises(BlockedWrite):
        await store.like("bob", post.id, None, 3)
    with pytest.raises(BlockedWrite):
        await store.create_post("bob", "re", post.id, post.id, (), (), (), 3)
    assert (await store.unlike("bob", post.id, 3)).value == (False, 0)  # lifting is allowed
    assert await store.followee_ids("bob") == []
    reloaded = await store.get_post(post.id)
    assert reloaded is not None and (reloaded.likes, reloaded.replies) == (0, 0)
    await store.unblock("ann", "bob")
    assert (await store.follow("bob", "ann", 4)).value is True


async def test_mutes_that_ran_out_are_pruned_and_a_new_mute_goes_to_the_top(
    store: Store,
) -> None:
    await store.mute("ann", "bob", 100, 1)
    await store.mute("ann", "cat", 300, 1)
    await store.mute("ann", "dan", None, 1)
    await store.mute("bob", "ann", 100, 1)
    assert await store.prune_mutes(50) == 0
    assert await store.prune_mutes(100) == 2  # ann's of bob, bob's of ann
    assert (await store.relations("ann", 0)).muted == {"cat": 300, "dan": None}
    assert (await store.barriers("ann", ["bob"], 0)).muting == frozenset()
    assert (await store.relations_page("ann", MUTE, 0, None, 10)).items == (
        Relation("dan"),
        Relation("cat", 300),
    )
    await store.mute("ann", "cat", None, 2)  # muting again: no end, and on top
    assert (await store.relations_page("ann", MUTE, 0, None, 10)).items == (
        Relation("cat"),
        Relation("dan"),
    )
    assert await store.prune_mutes(10**12) == 0  # cat's end was lifted with it
    await store.unmute("ann", "dan")
    assert (await store.relations("ann", 0)).muted == {"cat": None}


async def test_empty_block_and_mute_lists(store: Store) -> None:
    for kind in (BLOCK, MUTE):
        assert await store.relations_page("ann", kind, 0, None, 10) == Page((), None)
    await store.mute("ann", "bob", None, 1)
    await store.unmute("ann", "bob")
    assert await store.relations_page("ann", MUTE, 0, None, 10) == Page((), None)
