"""Block and mute end to end on a real node: live pushes, replays, pages and refusals.

"Not received" is shown with a marker: after the hidden write, a visible one follows,
and the next event of that type must be the visible one (events arrive in order).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from hub.node import Node
from hub.records import Relations
from tests.hub.conftest import Connect
from tests.hub.wsclient import RequestFailed, WsClient
from tests.waiting import until


async def _refused(client: WsClient, op: str, **args: Any) -> str:
    with pytest.raises(RequestFailed) as failed:
        await client.call(op, **args)
    return failed.value.reply.code


async def _next_post(client: WsClient, event: str = "feed.insert") -> Mapping[str, Any]:
    inserted = await client.next_event(event)
    return inserted.data if event == "feed.insert" else inserted.data["post"]


async def _texts_until(client: WsClient, marker: str, event: str = "feed.insert") -> list[str]:
    """The texts of the posts ``event`` brings, up to and including ``marker``."""
    texts: list[str] = []
    while not texts or texts[-1] != marker:
        texts.append((await _next_post(client, event))["text"])
    return texts


async def test_block_ends_follows_hides_both_ways_and_refuses_interactions(
    connect: Connect,
) -> None:
    alice = await connect("alice")
    alice_phone = await connect("alice")
    mallory = await connect("mallory")
    carol = await connect("carol")
    await alice.call("follow", user="mallory")
    await mallory.call("follow", user="alice")
    old = await alice.call("post", text="before the block")
    assert await _texts_until(mallory, "before the block") == ["before the block"]

    assert await alice.call("block", user="mallory") == {"user": "mallory", "blocked": True}
    for device in (alice, alice_phone):  # one's own devices hear of it
        relation = await device.next_event("relation")
        assert relation.data == {"user": "mallory", "blocked": True}
        assert relation.cursor is None
    profile = await alice.call("profile.get", user="alice")
    assert (profile["following"], profile["followers"]) == (0, 0)  # both follows ended

    # Live: neither hears the other on a stream either.
    for client in (alice, mallory):
        await client.call("subscribe", stream="public")
    await mallory.call("post", text="from mallory")
    await alice.call("post", text="from alice")
    await carol.call("post", text="from carol")
    assert await _texts_until(alice, "from carol", "stream.insert") == ["from alice", "from carol"]
    assert await _texts_until(mallory, "from carol", "stream.insert") == [
        "from mallory",
        "from carol",
    ]

    # Refusals across the block, both ways.
    assert await _refused(mallory, "follow", user="alice") == "blocked"
    assert await _refused(alice, "follow", user="mallory") == "blocked"
    assert await _refused(mallory, "like", post=old["id"]) == "blocked"
    assert await _refused(mallory, "post", text="hi", reply_to=old["id"]) == "blocked"
    assert await _refused(mallory, "profile.get", user="alice") == "not_found"
    assert await _refused(mallory, "post.get", post=old["id"]) == "not_found"

    # Pages: the other's posts are gone from every listing, their lists are not found.
    await carol.call("post", text="a reply", reply_to=old["id"])
    for client, other in ((alice, "mallory"), (mallory, "alice")):
        for op in ("feed.public", "feed.home"):
            page = await client.call(op)
            assert all(post["author"] != other for post in page["items"]), (op, page)
        for op in ("feed.user", "followers", "following"):
            assert await _refused(client, op, user=other) == "not_found", op
    await connect("dan")
    for client in (alice, mallory):
        await client.call("follow", user="dan")
    for client, own in ((alice, "alice"), (mallory, "mallory")):
        followers = await client.call("followers", user="dan")
        assert [profile["id"] for profile in followers["items"]] == [own]
    assert await _refused(mallory, "feed.replies", post=old["id"]) == "not_found"
    assert (await mallory.call("presence", users=["alice"]))["online"] == []

    # A mention across the block notifies nobody.
    await mallory.call("post", text="hey @alice")
    await carol.call("post", text="hey @alice from carol")
    note = await alice.next_event("notification")
    assert note.data["notification"]["actor"] == "carol"

    assert (await alice.call("blocks"))["items"] == [{"user": "mallory", "until": None}]
    assert await alice.call("unblock", user="mallory") == {"user": "mallory", "blocked": False}
    assert (await alice.next_event("relation")).data == {"user": "mallory", "blocked": False}
    await mallory.call("follow", user="alice")
    await alice.call("post", text="after the unblock")
    assert await _texts_until(mallory, "after the unblock") == ["hey @alice", "after the unblock"]


async def test_mute_hides_posts_and_notifications_from_the_muter_only(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    carol = await connect("carol")
    await alice.call("follow", user="bob")
    await alice.call("follow", user="carol")
    await bob.call("follow", user="alice")
    assert (await alice.call("mute", user="bob"))["muted"] is True
    muted = await alice.next_event("relation")
    assert muted.data == {"user": "bob", "muted": True, "until": None}

    first = await bob.call("post", text="bob talks @alice")
    await carol.call("post", text="carol talks")
    assert (await _next_post(alice))["author"] == "carol"
    await bob.call("like", post=(await alice.call("post", text="alice talks"))["id"])
    await carol.call("follow", user="alice")
    note = await alice.next_event("notification")
    assert note.data["notification"]["actor"] == "carol"  # no mention, no like from bob
    # bob is told nothing and still sees alice.
    assert await _texts_until(bob, "alice talks") == ["bob talks @alice", "alice talks"]
    assert "relation" not in {event.type for event in _drain(bob)}
    home = await alice.call("feed.home")
    assert [post["author"] for post in home["items"]] == ["alice", "carol"]
    assert (await alice.call("post.get", post=first["id"]))["author"] == "bob"  # not blocked

    await alice.call("unmute", user="bob")
    await bob.call("post", text="bob again")
    assert (await _next_post(alice))["text"] == "bob again"


async def test_a_mute_with_an_end_runs_out(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    until = int(time.time() * 1000) + 400
    assert (await alice.call("mute", user="bob", until=until))["until"] == until
    assert (await alice.call("mutes"))["items"] == [{"user": "bob", "until": until}]
    await bob.call("post", text="muted")
    await alice.call("post", text="marker")
    assert (await _next_post(alice))["text"] == "marker"
    await asyncio.sleep((until - time.time() * 1000) / 1000 + 0.01)  # past the end on the clock
    await bob.call("post", text="heard again")
    assert (await _next_post(alice))["text"] == "heard again"
    assert (await alice.call("mutes"))["items"] == []
    assert await _refused(alice, "mute", user="bob", until=1000) == "bad_request"


async def test_blocks_hold_across_a_reconnect_and_in_the_replay(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("subscribe", stream="public")
    cursor = alice.cursor
    await alice.call("block", user="bob")
    await alice.close()
    await bob.call("post", text="while alice was away")
    await bob.call("post", text="@alice again")
    resumed = await connect("alice", resume=cursor)
    assert resumed.auth_result["replayed"] == 0
    await bob.call("post", text="live, after the reconnect")
    marker = await connect("carol")
    await resumed.call("follow", user="carol")
    await marker.call("post", text="marker")
    assert (await _next_post(resumed))["text"] == "marker"
    assert _drain(resumed) == []


async def test_block_and_mute_validate_their_target(connect: Connect) -> None:
    alice = await connect("alice")
    assert await _refused(alice, "block", user="alice") == "conflict"
    assert await _refused(alice, "mute", user="alice") == "conflict"
    assert await _refused(alice, "block", user="nobody_here") == "not_found"
    await connect("bob")
    assert (await alice.call("unblock", user="bob"))["blocked"] is False
    assert (await alice.call("unmute", user="bob"))["muted"] is False


def _drain(client: WsClient) -> list[Any]:
    """The events already received and not yet read."""
    drained = []
    while not client.events.empty():
        drained.append(client.events.get_nowait())
    return drained


async def test_a_block_made_while_the_user_signs_in_is_not_lost(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relations read at sign-in may predate a block whose update reaches the session
    before the read's answer (on Redis they travel on different connections): the
    update is applied again on top of the read."""
    mallory = await connect("mallory")
    await connect("xavier")
    first = await connect("alice")
    await first.call("mute", user="xavier")  # the read finds something: a shield is built
    await first.close()
    read = node.store.relations

    async def read_then_block(user: str, now: int) -> Relations:
        found = await read(user, now)
        if user == "alice":
            await mallory.call("block", user="alice")  # heard by the signing-in session
        return found

    monkeypatch.setattr(node.store, "relations", read_then_block)
    alice = await connect("alice")
    assert all(session.shield.blocks("mallory") for session in node.local_sessions("alice"))
    await alice.call("subscribe", stream="public")
    await mallory.call("post", text="from mallory")
    marker = await connect("carol")
    await marker.call("post", text="marker")
    assert await _texts_until(alice, "marker", "stream.insert") == ["marker"]


async def test_sessions_that_end_leave_no_trace_in_the_hider_index(
    node: Node, connect: Connect
) -> None:
    await connect("bob")
    for _ in range(3):
        alice = await connect("alice")
        ends = int(time.time() * 1000) + 150
        await alice.call("mute", user="bob", until=ends)
        assert len(node.fanout.hiding("bob")) == 1
        await asyncio.sleep((ends - time.time() * 1000) / 1000 + 0.01)  # the mute runs out
        await alice.call("feed.public")  # the shield forgets the mute on its own
        await alice.close()
    await until(lambda: not node.local_sessions("alice"), "alice's sessions ended")
    assert node.fanout.hiding("bob") == frozenset()


async def test_notification_groups_never_name_a_hidden_user(connect: Connect) -> None:
    alice = await connect("alice")
    mallory, bob, carol = [await connect(user) for user in ("mallory", "bob", "carol")]
    first = await alice.call("post", text="first")
    second = await alice.call("post", text="second")
    for liker, post in ((mallory, first), (bob, first), (bob, second), (mallory, second)):
        await liker.call("like", post=post["id"])
    await alice.call("block", user="mallory")
    cursor = alice.cursor
    await carol.call("like", post=first["id"])

    def group(note: Mapping[str, Any]) -> tuple[str, list[str], int]:
        return note["actor"], note["actors"], note["others"]

    while (event := await alice.next_event("notification")).data["notification"]["actor"] != (
        "carol"
    ):
        pass
    assert group(event.data["notification"]) == ("carol", ["carol", "bob"], 1)
    page = await alice.call("notifications")
    groups = {note["post"]: group(note) for note in page["items"] if note["kind"] == "like"}
    assert groups == {
        first["id"]: ("carol", ["carol", "bob"], 1),
        second["id"]: ("bob", ["bob"], 0),
    }

    resumed = await connect("alice", resume=cursor)
    replayed = await resumed.next_event("notification")
    assert group(replayed.data["notification"]) == ("carol", ["carol", "bob"], 1)


async def test_an_unfollow_made_while_the_user_signs_in_is_not_lost(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the followees read at sign-in: an unfollow heard before the read's
    answer is applied again on top of it."""
    bob = await connect("bob")
    phone = await connect("alice")
    await phone.call("follow", user="bob")
    read = node.store.followee_ids

    async def read_then_unfollow(user: str) -> list[str]:
        found = await read(user)
        if user == "alice":
            await phone.call("unfollow", user="bob")  # heard by the signing-in session
        return found

    monkeypatch.setattr(node.store, "followee_ids", read_then_unfollow)
    alice = await connect("alice")
    await bob.call("post", text="not for alice any more")
    await alice.call("post", text="marker")
    assert await _texts_until(alice, "marker") == ["marker"]
