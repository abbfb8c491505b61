"""Store contract: profiles, follows, posts, likes, feeds and notifications."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import pytest

from hub.backends.base import CursorError, MissingRecord, Store
from hub.records import Notification, Page, Post
from tests.backends.backend_harness import Backends

Listing = Callable[[str | None, int], Awaitable[Page[Post] | Page[Notification]]]
"""A page reader: (before, limit) -> page."""


@pytest.fixture
async def store(backend: Backends) -> Store:
    """The store, with users ann, bob and cat."""
    for user in ("ann", "bob", "cat"):
        await backend.store.ensure_profile(user, 1)
    return backend.store


async def post(store: Store, author: str, text: str = "hi", *, tags: tuple[str, ...] = ()) -> Post:
    """A top-level post."""
    return (await store.create_post(author, text, None, None, tags, (), (), 10)).value


async def reply(store: Store, author: str, parent: Post) -> Post:
    """A reply to a top-level post."""
    return (await store.create_post(author, "r", parent.id, parent.id, (), (), (), 11)).value


async def all_pages(read: Listing, limit: int) -> list[list[int]]:
    """The ids of every page of a listing, following ``next`` to the end."""
    pages: list[list[int]] = []
    before = None
    while True:
        page = await read(before, limit)
        pages.append([item.id for item in page.items])
        if page.next is None:
            return pages
        before = page.next


async def all_ids(read: Listing, limit: int) -> list[int]:
    """The ids of a whole listing, in order."""
    return list(itertools.chain.from_iterable(await all_pages(read, limit)))


async def test_ensure_profile_creates_once(store: Store) -> None:
    ann = await store.ensure_profile("ann", 99)
    assert (ann.id, ann.name, ann.bio, ann.created_at) == ("ann", "ann", "", 1)
    assert await store.get_profile("nobody") is None


async def test_update_profile_keeps_what_is_none(store: Store) -> None:
    await store.update_profile("ann", "Ann", None)
    ann = await store.update_profile("ann", None, "bio")
    assert (ann.name, ann.bio) == ("Ann", "bio")


async def test_follow_is_idempotent_and_counted(store: Store) -> None:
    assert (await store.follow("ann", "bob", 2)).value
    assert not (await store.follow("ann", "bob", 3)).value
    assert await store.followee_ids("ann") == ["bob"]
    ann, bob = await store.get_profile("ann"), await store.get_profile("bob")
    assert ann is not None and bob is not None
    assert (ann.following, bob.followers) == (1, 1)
    assert (await store.unfollow("ann", "bob")).value
    assert not (await store.unfollow("ann", "bob")).value
    bob = await store.get_profile("bob")
    assert bob is not None and bob.followers == 0


async def test_follow_unknown_user_is_missing(store: Store) -> None:
    with pytest.raises(MissingRecord):
        await store.follow("ann", "nobody", 2)


async def test_follow_pages_most_recent_first(store: Store) -> None:
    for user in ("bob", "cat"):
        await store.follow(user, "ann", 2)
    await store.follow("ann", "cat", 2)
    followers = await store.followers_page("ann", None, 1)
    assert [p.id for p in followers.items] == ["cat"] and followers.next is not None
    rest = await store.followers_page("ann", followers.next, 1)
    assert [p.id for p in rest.items] == ["bob"] and rest.next is None
    following = await store.following_page("ann", None, 10)
    assert following == Page(following.items, None)
    assert [p.id for p in following.items] == ["cat"]


async def test_posts_are_created_read_edited_and_soft_deleted(store: Store) -> None:
    first = (await store.create_post("ann", "a #x", None, None, ("x",), ("bob",), (), 10)).value
    assert first.tags == ("x",) and first.mentions == ("bob",) and not first.deleted
    assert await store.get_post(first.id) == first
    edited = (await store.edit_post(first.id, "b #y", ("y",), (), 20)).value
    assert (edited.text, edited.tags, edited.mentions, edited.edited_at) == ("b #y", ("y",), (), 20)
    assert [p.id for p in (await store.hashtag_page("x", None, 10)).items] == []
    assert [p.id for p in (await store.hashtag_page("y", None, 10)).items] == [first.id]
    gone = (await store.delete_post(first.id, 25)).value
    assert gone.deleted and await store.get_post(first.id) is None
    second = await post(store, "ann")
    assert second.id > first.id
    ann = await store.get_profile("ann")
    assert ann is not None and ann.posts == 1
    with pytest.raises(MissingRecord):
        await store.edit_post(first.id, "c", (), (), 30)


async def test_replies_count_and_page_oldest_first(store: Store) -> None:
    root = await post(store, "ann")
    replies = [await reply(store, "bob", root) for _ in range(3)]
    parent = await store.get_post(root.id)
    assert parent is not None and parent.replies == 3
    pages = await all_pages(lambda b, n: store.replies_page(root.id, b, n), 2)
    assert pages == [[replies[0].id, replies[1].id], [replies[2].id]]
    await store.delete_post(replies[1].id, 12)
    parent = await store.get_post(root.id)
    assert parent is not None and parent.replies == 2


async def test_likes_are_idempotent(store: Store) -> None:
    target = await post(store, "ann")
    assert (await store.like("bob", target.id, None, 11)).value == (True, 1)
    assert (await store.like("bob", target.id, None, 12)).value == (False, 1)
    assert (await store.like("cat", target.id, None, 13)).value == (True, 2)
    assert (await store.unlike("bob", target.id, 14)).value == (True, 1)
    assert (await store.unlike("bob", target.id, 14)).value == (False, 1)
    liked = await store.get_post(target.id)
    assert liked is not None and liked.likes == 1


async def test_liked_among_says_which_posts_a_user_likes(store: Store) -> None:
    first, second, third = [await post(store, "ann") for _ in range(3)]
    await store.like("bob", first.id, None, 11)
    await store.like("bob", third.id, None, 11)
    await store.like("cat", second.id, None, 11)
    await store.unlike("bob", third.id, 12)
    assert await store.liked_among("bob", [first.id, second.id, third.id, 999]) == {first.id}
    assert await store.liked_among("cat", [first.id, second.id]) == {second.id}
    assert await store.liked_among("bob", []) == set()


async def test_feeds_page_newest_first_without_deleted(store: Store) -> None:
    await store.follow("ann", "bob", 2)
    authors = ["ann", "bob", "cat"] * 3
    ids = [(await post(store, author, tags=("t",))).id for author in authors]
    assert ids == sorted(ids)  # a later post has a higher id
    by = dict(zip(ids, authors, strict=True))
    await store.delete_post(ids[4], 12)
    live = [i for i in reversed(ids) if i != ids[4]]
    home = [i for i in live if by[i] != "cat"]
    assert await all_ids(lambda b, n: store.home_page("ann", b, n), 2) == home
    assert await all_ids(store.public_page, 3) == live
    assert await all_ids(lambda b, n: store.hashtag_page("t", b, n), 4) == live
    cats = [i for i in live if by[i] == "cat"]
    assert await all_ids(lambda b, n: store.user_page("cat", b, n), 1) == cats


async def test_full_last_page_has_no_next(store: Store) -> None:
    ids = [(await post(store, "ann")).id for _ in range(4)]
    assert await all_pages(store.public_page, 2) == [[ids[3], ids[2]], [ids[1], ids[0]]]


async def test_foreign_cursor_is_rejected(store: Store) -> None:
    with pytest.raises(CursorError):
        await store.public_page("not-mine", 10)


async def test_notifications_page_unread_and_mark_read(store: Store) -> None:
    targets = [await post(store, "ann") for _ in range(3)]
    for user, target in zip(("bob", "cat", "dan"), targets, strict=True):
        await store.ensure_profile(user, 1)
        await store.like(user, target.id, "ann", 20)
    made = (await store.notifications_page("ann", None, 10)).items[::-1]
    assert made[0].user == "ann" and not made[0].read and made[0].post == targets[0].id
    assert [(n.kind, n.actor) for n in made] == [("like", "bob"), ("like", "cat"), ("like", "dan")]
    assert await store.unread_count("ann") == 3
    pages = await all_pages(lambda b, n: store.notifications_page("ann", b, n), 2)
    assert pages == [[made[2].id, made[1].id], [made[0].id]]
    assert await store.mark_read("ann", made[1].id) == 1
    page = await store.notifications_page("ann", None, 10)
    assert [n.read for n in page.items] == [False, True, True]
    assert await store.mark_read("ann", None) == 0
    assert await store.unread_count("bob") == 0
