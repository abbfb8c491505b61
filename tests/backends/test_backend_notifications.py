"""Store contract: notifications are deduplicated groups, paged exactly, and pruned.

At most one notification per (user, kind, post), joined once by each actor; a new actor
moves the group to a new, higher id (unread, named first); pruning by age and count
forgets a group with its actors (``hub.backends.base.Store.notifications_page``).
"""

from __future__ import annotations

from typing import Any

from hub.backends.base import FollowChange, Store
from hub.names import DevicesKey, FollowersKey
from hub.records import Change, Notification, PresenceChange
from hub.wire import notification_to_wire
from tests.backends.backend_harness import Backends
from tests.backends.test_backend_bus_presence import Collector, is_follow, watching
from tests.backends.test_backend_store import all_pages, post

USERS = ("ann", "bob", "cat", "dan", "eve", "fay")
TOGGLES = 50


async def notes(store: Store, user: str = "ann") -> list[Notification]:
    """Every notification of ``user``, newest first (pages of 2)."""
    found: list[Notification] = []
    before = None
    while True:
        page = await store.notifications_page(user, before, 2)
        found.extend(page.items)
        if page.next is None:
            return found
        before = page.next


def shown(change: Change) -> dict[str, Any]:
    """The Notification wire map a notification change carries."""
    return dict(change.data["notification"])


async def test_like_toggles_notify_once(backend: Backends) -> None:
    store = backend.store
    for user in USERS[:2]:
        await store.ensure_profile(user, 1)
    target = await post(store, "ann")
    first = await store.like("bob", target.id, "ann", 20)
    assert len(first.changes) == 1
    for turn in range(TOGGLES):
        assert (await store.unlike("bob", target.id, 21 + turn)).changes == ()
        again = await store.like("bob", target.id, "ann", 21 + turn)
        assert again.value == (True, 1) and again.changes == ()
    (note,) = await notes(store)
    assert (note.kind, note.actor, note.post, note.actors, note.others) == (
        "like", "bob", target.id, ("bob",), 0
    )  # fmt: skip
    assert shown(first.changes[0]) == notification_to_wire(note)
    assert await store.unread_count("ann") == 1


async def test_follow_toggles_notify_once_and_still_refile(backend: Backends) -> None:
    store = backend.store
    for user in USERS[:2]:
        await store.ensure_profile(user, 1)
    got = Collector()
    backend.bus.subscribe(got)
    await watching(backend, DevicesKey("ann"), DevicesKey("bob"), FollowersKey("ann"))
    (note,) = (await store.follow("ann", "bob", 5)).changes
    heard, follow_change = await got.take(2)
    assert heard == note
    assert await is_follow(backend, follow_change, FollowChange("ann", "bob", True, note.seq))
    for turn in range(TOGGLES):
        assert (await store.unfollow("ann", "bob")).value is True
        again = await store.follow("ann", "bob", 6 + turn)
        assert again.value is True and again.changes == ()
    following = [on for _ in range(TOGGLES) for on in (False, True)]
    for on, message in zip(following, await got.take(2 * TOGGLES), strict=True):
        # every follow refiles, none notifies
        assert await is_follow(backend, message, FollowChange("ann", "bob", on, note.seq))
    await backend.bus.publish(PresenceChange("ann", True))
    assert await got.take(1) == [PresenceChange("ann", True)]
    (group,) = await notes(store, "bob")
    assert (group.kind, group.actor, group.post, group.others) == ("follow", "ann", None, 0)
    assert await store.unread_count("bob") == 1


async def test_a_new_actor_moves_the_group_up_named_first(backend: Backends) -> None:
    store = backend.store
    for user in USERS:
        await store.ensure_profile(user, 1)
    liked, other = await post(store, "ann"), await post(store, "ann")
    changes = []
    for at, user in enumerate(("bob", "cat", "dan"), 20):
        changes += (await store.like(user, liked.id, "ann", at)).changes
    changes += (await store.like("bob", other.id, "ann", 30)).changes
    assert [n.post for n in await notes(store)] == [other.id, liked.id]
    assert await store.mark_read("ann", None) == 0
    (joined,) = (await store.like("eve", liked.id, "ann", 40)).changes
    top, below = await notes(store)
    assert (top.post, top.actor, top.actors, top.others) == (
        liked.id, "eve", ("eve", "dan", "cat"), 3
    )  # fmt: skip
    assert not top.read and below.read and top.id > max(shown(c)["id"] for c in changes)
    assert top.created_at == 40 and shown(joined) == notification_to_wire(top)
    assert joined.data["unread"] == 1 == await store.unread_count("ann")
    assert [shown(c)["others"] for c in changes] == [0, 1, 2, 0]
    assert [shown(c)["actors"] for c in changes[:3]] == [
        ["bob"],
        ["cat", "bob"],
        ["dan", "cat", "bob"],
    ]


async def test_groups_page_exactly_while_they_move(backend: Backends) -> None:
    store = backend.store
    for user in USERS:
        await store.ensure_profile(user, 1)
    posts = [await post(store, "ann") for _ in range(7)]
    for at, target in enumerate(posts, 20):
        for user in USERS[1 : 2 + target.id % 4]:
            await store.like(user, target.id, "ann", at)
    await store.follow("bob", "ann", 30)
    await store.follow("cat", "ann", 31)
    groups = await notes(store)
    assert [(n.kind, n.post) for n in groups] == [("follow", None)] + [
        ("like", p.id) for p in reversed(posts)
    ]
    pages = await all_pages(lambda b, n: store.notifications_page("ann", b, n), 3)
    assert [i for page in pages for i in page] == [n.id for n in groups]
    assert await store.unread_count("ann") == len(groups)
    first = await store.notifications_page("ann", None, 3)
    moved = groups[5]  # on a later page: it moves above the cursor, so paging skips it
    await store.like("fay", moved.post or 0, "ann", 40)
    rest = await all_pages(lambda b, n: store.notifications_page("ann", b, n), 3)
    seen = [n.id for n in first.items]
    before = first.next
    while before is not None:
        page = await store.notifications_page("ann", before, 3)
        seen += [n.id for n in page.items]
        before = page.next
    assert seen == [n.id for n in groups if n is not moved]
    assert len({i for page in rest for i in page}) == len(groups)
    assert await store.mark_read("ann", first.items[0].id) == 1  # all shown; not the moved


async def test_prune_by_age_forgets_groups_with_their_actors(backend: Backends) -> None:
    store = backend.store
    for user in USERS[:3]:
        await store.ensure_profile(user, 1)
    old, new = await post(store, "ann"), await post(store, "ann")
    await store.like("bob", old.id, "ann", 10)
    await store.like("cat", old.id, "ann", 15)
    await store.like("bob", new.id, "ann", 30)
    assert await store.prune_notifications(15, 1000) == 0  # its newest actor came at 15
    assert [n.post for n in await notes(store)] == [new.id, old.id]
    assert await store.prune_notifications(16, 1000) == 1
    assert await store.prune_notifications(16, 1000) == 0
    assert [n.post for n in await notes(store)] == [new.id]
    assert await store.unread_count("ann") == 1
    await store.unlike("bob", old.id, 40)
    (again,) = (await store.like("bob", old.id, "ann", 41)).changes  # a new group, alone
    assert (shown(again)["actors"], shown(again)["others"]) == (["bob"], 0)
    assert (await store.like("cat", new.id, "ann", 42)).changes  # untouched group grows
    assert [(n.post, n.others) for n in await notes(store)] == [(new.id, 1), (old.id, 0)]


async def test_prune_by_count_keeps_the_newest_of_each_user(backend: Backends) -> None:
    store = backend.store
    for user in USERS[:3]:
        await store.ensure_profile(user, 1)
    posts = [await post(store, "ann") for _ in range(5)]
    for at, target in enumerate(posts, 20):
        await store.like("bob", target.id, "ann", at)
    await store.like("ann", posts[0].id, "cat", 30)
    await store.mark_read("ann", None)
    await store.like("cat", posts[1].id, "ann", 31)  # moves up: among the newest two
    assert await store.prune_notifications(0, 2) == 3
    assert await store.prune_notifications(0, 2) == 0
    assert [(n.post, n.read) for n in await notes(store)] == [
        (posts[1].id, False), (posts[4].id, True)
    ]  # fmt: skip
    assert await store.unread_count("ann") == 1
    assert len(await notes(store, "cat")) == 1
    await store.unlike("bob", posts[0].id, 40)
    assert (await store.like("bob", posts[0].id, "ann", 41)).changes  # pruned: notifies again
