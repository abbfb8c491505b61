"""One write, one commit: each Store write commits its changes and publishes them.

Every write's :class:`~hub.records.Committed` changes are in the change log and arrive on
the bus once each, in seq order, with the same payloads on both backends; follows
publish a :class:`FollowChange` the same way on both; a shared bus that lost its
connection says so with a :class:`BusGap` before anything newer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from hub.backends.base import BusGap, FollowChange, Store
from hub.backends.redis_bus import RedisBus
from hub.names import DevicesKey, FollowersKey
from hub.records import Change, ChangeKind, Notice, PresenceChange
from tests.backends.backend_harness import Backends, interest, post_change, redis_url
from tests.backends.test_backend_bus_presence import Collector, is_follow, watching


@pytest.fixture
async def store(backend: Backends) -> Store:
    """The store, with users ann, bob and cat."""
    for user in ("ann", "bob", "cat"):
        await backend.store.ensure_profile(user, 1)
    return backend.store


async def logged(backend: Backends, change: Change) -> list[Change]:
    """The changes from ``change`` on in its log (read through its recipient's or
    author's interest)."""
    user = change.recipient or change.author
    found = await backend.changelog.read_since(change.seq - 1, interest(user, (user,)), 10)
    assert found is not None
    return found


def stored(change: Change) -> Change:
    """``change`` as its log keeps it: without the ``route_tags`` of its live event."""
    return dataclasses.replace(change, route_tags=())


async def assert_logged(backend: Backends, *changes: Change) -> None:
    """Each of ``changes`` is in the change log exactly as the write returned it (but for
    its ``route_tags``)."""
    for change in changes:
        assert stored(change) in await logged(backend, change), f"{change} is not in the log"


async def test_a_reply_commits_post_counts_and_notifications_together(
    backend: Backends, store: Store
) -> None:
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, *map(FollowersKey, ("ann", "bob")), *map(DevicesKey, ("ann", "cat")))
    root = (await store.create_post("ann", "root", None, None, (), (), (), 10)).value
    created = await store.create_post(
        "bob", "re @cat", root.id, root.id, (), ("cat",),
        (Notice("ann", "reply"), Notice("cat", "mention")), 11,
    )  # fmt: skip
    by_kind = {(c.kind, c.recipient): c for c in created.changes}
    assert created.changes[0].kind == ChangeKind.POST_CREATED  # the rest: in any order
    assert set(by_kind) == {
        (ChangeKind.POST_CREATED, None),
        (ChangeKind.POST_COUNTS, None),
        (ChangeKind.NOTIFICATION, "ann"),
        (ChangeKind.NOTIFICATION, "cat"),
    }
    post, counts = by_kind[ChangeKind.POST_CREATED, None], by_kind[ChangeKind.POST_COUNTS, None]
    to_ann = by_kind[ChangeKind.NOTIFICATION, "ann"]
    to_cat = by_kind[ChangeKind.NOTIFICATION, "cat"]
    assert post.data["id"] == created.value.id and post.post == created.value.id
    assert counts.data == {"id": root.id, "likes": 0, "replies": 1}
    notes = (await store.notifications_page("ann", None, 10)).items
    assert to_ann.data["notification"]["id"] == notes[0].id and to_ann.data["unread"] == 1
    assert to_cat.data["notification"]["post"] == created.value.id
    seqs = [c.seq for c in created.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    received = await got.take(5)  # the root's post.created, then the reply's four
    assert received[1:] == list(created.changes)
    await assert_logged(backend, *created.changes)


async def test_follow_commits_its_notification_and_publishes_a_follow_change(
    backend: Backends, store: Store
) -> None:
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, DevicesKey("bob"), DevicesKey("ann"), FollowersKey("ann"))
    followed = await store.follow("ann", "bob", 5)
    assert followed.value is True
    (note,) = followed.changes
    assert (note.kind, note.recipient, note.data["notification"]["kind"]) == (
        ChangeKind.NOTIFICATION, "bob", "follow"
    )  # fmt: skip
    heard, follow_change = await got.take(2)
    assert heard == note
    assert await is_follow(backend, follow_change, FollowChange("ann", "bob", True, note.seq))
    await assert_logged(backend, note)
    again = await store.follow("ann", "bob", 6)
    assert (again.value, again.changes) == (False, ())
    unfollowed = await store.unfollow("ann", "bob")
    assert (unfollowed.value, unfollowed.changes) == (True, ())
    (follow_change,) = await got.take(1)
    assert await is_follow(backend, follow_change, FollowChange("ann", "bob", False, note.seq))
    assert (await store.unfollow("ann", "bob")).value is False
    await backend.bus.publish(PresenceChange("ann", True))
    assert await got.take(1) == [PresenceChange("ann", True)]  # no-ops published nothing


async def test_likes_edits_deletes_and_counts_commit_their_changes(
    backend: Backends, store: Store
) -> None:
    created = await store.create_post("ann", "root #a", None, None, ("a",), (), (), 10)
    root = created.value
    reply = (await store.create_post("bob", "re", root.id, root.id, (), (), (), 11)).value
    liked = await store.like("cat", root.id, "ann", 12)
    assert liked.value == (True, 1)
    assert [(c.kind, c.recipient) for c in liked.changes] == [(ChangeKind.NOTIFICATION, "ann")]
    assert (await store.like("cat", root.id, "ann", 13)).changes == ()
    assert (await store.unlike("cat", root.id, 13)).changes == ()
    (counts,) = (await store.record_counts(root.id, 14)).changes
    assert counts.data == {"id": root.id, "likes": 0, "replies": 1}
    (edit,) = (await store.edit_post(root.id, "now #b", ("b",), (), 15)).changes
    assert edit.kind == ChangeKind.POST_EDITED and (edit.tags, edit.route_tags) == (("b",), ("a",))
    assert edit.origin == created.changes[0].seq
    assert edit.data["text"] == "now #b" and (edit.data["likes"], edit.data["replies"]) == (0, 1)
    assert await logged(backend, counts) == [stored(edit)]  # the edit scrubbed counts
    deleted = await store.delete_post(reply.id, 16)
    assert [c.kind for c in deleted.changes] == [ChangeKind.POST_DELETED, ChangeKind.POST_COUNTS]
    assert deleted.changes[1].data == {"id": root.id, "likes": 0, "replies": 0}
    (gone,) = (await store.delete_post(root.id, 17)).changes
    assert (gone.tags, gone.route_tags, gone.origin) == ((), ("b",), edit.origin)
    assert (await store.record_counts(root.id, 18)).changes == ()
    await assert_logged(backend, *liked.changes, deleted.changes[0], gone)
    assert await logged(backend, counts) == [stored(gone)]  # the root's other changes went


async def test_a_bus_that_lost_messages_reports_a_gap_first(
    backend: Backends, tmp_path: Path
) -> None:
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, FollowersKey("ann"))
    (first,) = await backend.changelog.append([post_change("ann", 1)])
    assert await got.take(1) == [first]
    if isinstance(backend.bus, RedisBus):  # an in-process bus has no link to lose
        admin = aioredis.Redis.from_url(redis_url(tmp_path))
        try:
            await admin.client_kill_filter(_type="pubsub")
        finally:
            await admin.aclose()
        (missed,) = await backend.changelog.append([post_change("ann", 2)])
        first_after = (await got.take(1))[0]
        if first_after == missed:  # delivered before the kill took effect
            first_after = (await got.take(1))[0]
        assert first_after == BusGap(first.seq) or first_after == BusGap(missed.seq)
        await backend.bus.settled()
    (later,) = await backend.changelog.append([post_change("ann", 3)])
    assert (await got.take(1))[-1] == later


async def test_a_changed_like_counter_stays_pending_until_a_counts_change_logs_it(
    backend: Backends, store: Store
) -> None:
    post = (await store.create_post("ann", "hi", None, None, (), (), (), 10)).value
    assert await store.pending_counts(10**15, 10) == []
    await store.like("bob", post.id, "ann", 20)
    await store.like("bob", post.id, "ann", 25)  # no change: the mark keeps its time
    assert await store.pending_counts(19, 10) == []
    assert await store.pending_counts(20, 10) == [post.id]
    (counts,) = (await store.record_counts(post.id, 30)).changes
    assert counts.data == {"id": post.id, "likes": 1, "replies": 0}
    assert await store.pending_counts(10**15, 10) == []
    await store.unlike("bob", post.id, 40)
    assert await store.pending_counts(10**15, 10) == [post.id]
    await store.delete_post(post.id, 50)
    assert (await store.record_counts(post.id, 60)).changes == ()  # deleted: nothing to log
    assert await store.pending_counts(10**15, 10) == []  # but the mark is cleared
