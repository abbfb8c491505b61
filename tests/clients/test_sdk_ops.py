"""Every SDK operation against a real hub, in both codecs, and errors as typed exceptions."""

from __future__ import annotations

import pytest

from clients import (
    BadRequest,
    Conflict,
    FeedInsert,
    Forbidden,
    NewNotification,
    NotFound,
    PostDeleted,
    PostUpdated,
    PresenceChanged,
    StreamInsert,
    TooLarge,
    collect,
)
from tests.clients.conftest import Open, expect


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_every_operation(sdk: Open, codec: str) -> None:
    alice = await sdk("alice", codec=codec)
    bob = await sdk("bob", codec=codec)
    assert alice.me.id == "alice"
    assert (await alice.update_profile(name="Alice", bio="hi")).name == "Alice"
    assert (await bob.profile("alice")).bio == "hi"
    await alice.follow("bob")
    assert [p.id for p in (await alice.following("alice")).items] == ["bob"]
    assert [p.id for p in (await bob.followers("bob")).items] == ["alice"]
    events = alice.events()

    post = await bob.post("hello #news @alice")
    assert post.tags == ("news",) and post.mentions == ("alice",)
    assert (await expect(events, FeedInsert)).post == post
    mention = await expect(events, NewNotification)
    assert mention.notification.kind == "mention"

    await alice.subscribe("tag:news")
    reply = await alice.reply(post.id, "welcome #news")
    assert (reply.reply_to, reply.root) == (post.id, post.id)
    assert [p.id for p in (await bob.replies(post.id)).items] == [reply.id]
    assert await alice.like(post.id) == 1
    fetched = await alice.get_post(post.id)
    assert (fetched.id, fetched.likes, fetched.liked) == (post.id, 1, True)
    edited = await bob.edit(post.id, "hello again #news")
    assert edited.edited_at is not None
    assert (await expect(events, FeedInsert)).post.id == reply.id
    assert (await expect(events, StreamInsert)).post.id == reply.id
    update = await expect(events, PostUpdated)
    assert (update.id, update.replies) == (post.id, 1)
    assert [p.id for p in (await alice.home()).items] == [reply.id, post.id]
    assert [p.id for p in (await alice.timeline("bob")).items] == [post.id]
    assert [p.id for p in (await alice.public(limit=1)).items] == [reply.id]
    assert [p.id for p in (await alice.hashtag("news")).items] == [reply.id, post.id]
    pages = await collect(lambda before: alice.public(before, 1))
    assert [p.id for p in pages] == [reply.id, post.id]

    assert await alice.unlike(post.id) == 0
    notes = await bob.notifications()
    assert {n.kind for n in notes.items} == {"follow", "reply", "like"}
    assert notes.unread == 3 and all((n.actors, n.others) == ((n.actor,), 0) for n in notes.items)
    assert await bob.mark_read() == 0
    assert await alice.presence(["bob", "carol"]) == {"bob"}
    await alice.unsubscribe("tag:news")
    await bob.delete(post.id)
    await alice.unfollow("bob")
    assert (await alice.following("alice")).items == ()
    assert await alice.ping() > 0
    assert (await expect(events, PostDeleted)).id == post.id
    carol = await sdk("carol")
    await carol.follow("alice")
    await alice.follow("carol")
    await carol.close()
    assert await expect(events, PresenceChanged) == PresenceChanged(None, "carol", False)


async def test_errors_are_typed_exceptions(sdk: Open) -> None:
    alice = await sdk("alice")
    with pytest.raises(NotFound) as missing:
        await alice.profile("nobody")
    assert missing.value.code == "not_found"
    with pytest.raises(Conflict):
        await alice.follow("alice")
    bob = await sdk("bob")
    post = await bob.post("mine")
    with pytest.raises(Forbidden):
        await alice.edit(post.id, "yours")
    with pytest.raises(NotFound):
        await alice.get_post(post.id + 1000)
    with pytest.raises(BadRequest):
        await alice.post("   ")
    with pytest.raises(TooLarge):
        await alice.post("x" * 501)
    assert await alice.ping()  # the connection survived every error
