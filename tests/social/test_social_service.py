"""Domain rules of SocialService and the changes its writes produce."""

from __future__ import annotations

from collections.abc import Awaitable

import pytest

from hub.backends.sqlite import SqliteBackend
from hub.names import DevicesKey, FollowersKey, Stream, StreamKey
from hub.records import Change, ChangeKind, Interest
from hub.routing import interest_of
from hub.social import DomainError, SocialService
from hub.wire import post_to_wire
from protocol.errors import ErrorCode


async def refused(call: Awaitable[object]) -> ErrorCode:
    """The error code a call is refused with."""
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value.code


def kinds(changes: tuple[Change, ...]) -> list[tuple[str, str | None]]:
    """(kind, recipient) of each change, in order."""
    return [(change.kind, change.recipient) for change in changes]


async def test_sign_in_creates_profile_and_validates_id(social: SocialService) -> None:
    profile = await social.sign_in("dan")
    assert (profile.id, profile.name) == ("dan", "dan")
    assert await refused(social.sign_in("Not Valid")) == ErrorCode.BAD_REQUEST
    assert await refused(social.get_profile("nobody")) == ErrorCode.NOT_FOUND


async def test_update_profile_validates(social: SocialService) -> None:
    updated = await social.update_profile("ann", "Ann A.", None)
    assert (updated.name, updated.bio) == ("Ann A.", "")
    assert await refused(social.update_profile("ann", None, "b" * 301)) == ErrorCode.TOO_LARGE


async def test_follow_rules_and_notification(social: SocialService) -> None:
    assert await refused(social.follow("ann", "ann")) == ErrorCode.CONFLICT
    assert await refused(social.follow("ann", "nobody")) == ErrorCode.NOT_FOUND
    first = await social.follow("ann", "bob")
    assert first.value is True
    assert kinds(first.changes) == [(ChangeKind.NOTIFICATION, "bob")]
    data = first.changes[0].data
    assert data["unread"] == 1
    assert data["notification"]["kind"] == "follow" and data["notification"]["actor"] == "ann"
    again = await social.follow("ann", "bob")
    assert (again.value, again.changes) == (False, ())
    assert (await social.unfollow("ann", "bob")).value is True
    assert (await social.unfollow("ann", "bob")).value is False
    assert await refused(social.unfollow("ann", "nobody")) == ErrorCode.NOT_FOUND


async def test_follow_lists(social: SocialService) -> None:
    await social.follow("bob", "ann")
    await social.follow("cat", "ann")
    page = await social.followers("ann", None, 10)
    assert [p.id for p in page.items] == ["cat", "bob"]
    assert [p.id for p in (await social.following("bob", None, 10)).items] == ["ann"]
    assert await refused(social.followers("nobody", None, 10)) == ErrorCode.NOT_FOUND


async def test_post_parses_text_and_logs_creation(social: SocialService) -> None:
    outcome = await social.create_post("ann", "  Hi #Py @bob @nobody @ann  ", None)
    post = outcome.value
    assert (post.text, post.tags, post.mentions) == (
        "Hi #Py @bob @nobody @ann",
        ("py",),
        ("bob", "nobody", "ann"),
    )
    # the unknown user and the author herself are not notified
    assert kinds(outcome.changes) == [
        (ChangeKind.POST_CREATED, None),
        (ChangeKind.NOTIFICATION, "bob"),
    ]
    created = outcome.changes[0]
    assert (created.log, created.author, created.post, created.tags) == (
        "u:ann",
        "ann",
        post.id,
        ("py",),
    )
    assert created.data == post_to_wire(post) and "deleted" not in created.data
    assert outcome.changes[1].data["notification"]["kind"] == "mention"
    assert await refused(social.create_post("ann", "   ", None)) == ErrorCode.BAD_REQUEST
    assert await refused(social.create_post("ann", "x" * 501, None)) == ErrorCode.TOO_LARGE


async def test_replies_thread_count_and_notify(social: SocialService) -> None:
    top = (await social.create_post("ann", "top", None)).value
    reply = await social.create_post("bob", "re @ann @cat", top.id)
    assert (reply.value.reply_to, reply.value.root) == (top.id, top.id)
    assert kinds(reply.changes) == [
        (ChangeKind.POST_CREATED, None),
        (ChangeKind.POST_COUNTS, None),
        (ChangeKind.NOTIFICATION, "ann"),  # the reply; ann's mention is not notified twice
        (ChangeKind.NOTIFICATION, "cat"),
    ]
    assert reply.changes[1].data == {"id": top.id, "likes": 0, "replies": 1}
    assert reply.changes[1].log == "u:ann"
    assert reply.changes[2].data["notification"]["kind"] == "reply"
    nested = await social.create_post("ann", "re re", reply.value.id)
    assert (nested.value.reply_to, nested.value.root) == (reply.value.id, top.id)
    assert kinds(nested.changes)[-1] == (ChangeKind.NOTIFICATION, "bob")
    self_reply = await social.create_post("ann", "me again", top.id)
    assert ChangeKind.NOTIFICATION not in [c.kind for c in self_reply.changes]
    page = await social.replies_page(top.id, None, 10)
    assert [p.id for p in page.items] == [reply.value.id, self_reply.value.id]
    assert await refused(social.create_post("bob", "to nowhere", 999)) == ErrorCode.NOT_FOUND


async def test_edit_rules_and_change(social: SocialService) -> None:
    post = (await social.create_post("ann", "old #a", None)).value
    assert await refused(social.edit_post("bob", post.id, "mine now")) == ErrorCode.FORBIDDEN
    assert await refused(social.edit_post("ann", 999, "x")) == ErrorCode.NOT_FOUND
    assert await refused(social.edit_post("ann", post.id, " ")) == ErrorCode.BAD_REQUEST
    outcome = await social.edit_post("ann", post.id, "new #b @bob")
    edited = outcome.value
    assert (edited.tags, edited.mentions, edited.edited_at is not None) == (("b",), ("bob",), True)
    (change,) = outcome.changes
    assert change.kind == ChangeKind.POST_EDITED
    assert (change.tags, change.route_tags) == (("b",), ("a",))  # the old tag: live only
    assert change.data == post_to_wire(edited)  # the whole post: a replay may restate it


async def test_delete_rules_and_changes(social: SocialService) -> None:
    top = (await social.create_post("ann", "top", None)).value
    reply = (await social.create_post("bob", "re", top.id)).value
    assert await refused(social.delete_post("ann", reply.id)) == ErrorCode.FORBIDDEN
    outcome = await social.delete_post("bob", reply.id)
    assert outcome.value.id == reply.id
    assert kinds(outcome.changes) == [
        (ChangeKind.POST_DELETED, None),
        (ChangeKind.POST_COUNTS, None),
    ]
    assert outcome.changes[0].data == {"id": reply.id}
    assert outcome.changes[1].data == {"id": top.id, "likes": 0, "replies": 0}
    assert await refused(social.delete_post("bob", reply.id)) == ErrorCode.NOT_FOUND
    assert await refused(social.like("ann", reply.id)) == ErrorCode.NOT_FOUND


async def test_likes_are_idempotent_and_notify_once(social: SocialService) -> None:
    post = (await social.create_post("ann", "like me", None)).value
    first = await social.like("bob", post.id)
    assert first.value == (True, 1) and kinds(first.changes) == [(ChangeKind.NOTIFICATION, "ann")]
    again = await social.like("bob", post.id)
    assert (again.value, again.changes) == ((False, 1), ())
    own = await social.like("ann", post.id)
    assert (own.value, own.changes) == ((True, 2), ())
    assert (await social.unlike("bob", post.id)).value == (True, 1)
    assert (await social.unlike("bob", post.id)).value == (False, 1)
    counts = await social.counts_change(post.id)
    assert kinds(counts.changes) == [(ChangeKind.POST_COUNTS, None)]
    assert counts.changes[0].data == {"id": post.id, "likes": 1, "replies": 0}
    await social.delete_post("ann", post.id)
    assert (await social.counts_change(post.id)).changes == ()


async def test_feeds(social: SocialService) -> None:
    await social.follow("ann", "bob")
    mine = (await social.create_post("ann", "mine #t", None)).value
    theirs = (await social.create_post("bob", "theirs", None)).value
    other = (await social.create_post("cat", "other #t", None)).value
    assert [p.id for p in (await social.home_page("ann", None, 10)).items] == [theirs.id, mine.id]
    assert [p.id for p in (await social.user_page("cat", None, 10)).items] == [other.id]
    assert [p.id for p in (await social.hashtag_page("t", None, 10)).items] == [other.id, mine.id]
    public = await social.public_page(None, 2)
    assert [p.id for p in public.items] == [other.id, theirs.id] and public.next is not None
    rest = await social.public_page(public.next, 2)
    assert [p.id for p in rest.items] == [mine.id] and rest.next is None
    assert await refused(social.public_page("zz", 10)) == ErrorCode.BAD_REQUEST
    assert await refused(social.hashtag_page("Not a tag", None, 10)) == ErrorCode.BAD_REQUEST
    assert await refused(social.user_page("nobody", None, 10)) == ErrorCode.NOT_FOUND
    assert await refused(social.replies_page(999, None, 10)) == ErrorCode.NOT_FOUND


async def test_notifications_and_mark_read(social: SocialService) -> None:
    await social.follow("bob", "ann")
    await social.create_post("cat", "hi @ann", None)
    page, unread = await social.notifications("ann", None, 10)
    assert unread == 2 and [(n.kind, n.actor) for n in page.items] == [
        ("mention", "cat"),
        ("follow", "bob"),
    ]
    assert await social.mark_read("ann", page.items[1].id) == 1
    await social.follow("cat", "ann")  # joins the follow group: one group, moved up
    page, unread = await social.notifications("ann", None, 10)
    assert unread == 2 and [(n.kind, n.actors, n.others) for n in page.items] == [
        ("follow", ("cat", "bob"), 1),
        ("mention", ("cat",), 0),
    ]
    assert await social.mark_read("ann", None) == 0


async def test_interest_and_outcome_changes_are_logged(
    social: SocialService, backend: SqliteBackend
) -> None:
    await social.follow("ann", "bob")
    keys = [DevicesKey("ann"), FollowersKey("ann"), FollowersKey("bob")]
    wanted = interest_of(
        "ann", [*keys, *(StreamKey(Stream.parse(s)) for s in ("tag:t", "thread:7"))]
    )
    assert wanted == Interest(
        "ann", frozenset({"ann", "bob"}), False, frozenset({"t"}), frozenset({7})
    )
    mine = await social.create_post("bob", "hello @ann", None)
    assert all(wanted.matches(change) for change in mine.changes)
    elsewhere = await social.create_post("cat", "unrelated", None)
    assert not wanted.matches(elsewhere.changes[0])
    tagged = await social.create_post("cat", "#t", None)
    assert wanted.matches(tagged.changes[0])
    replayed = await backend.changelog.read_since(0, wanted, 100)
    assert replayed is not None
    assert [c.seq for c in replayed] == [c.seq for c in (*mine.changes, *tagged.changes)]
