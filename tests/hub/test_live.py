"""Live updates end to end: two users over real WebSockets on a real node."""

from __future__ import annotations

import pytest

from tests.hub.conftest import Connect


@pytest.mark.parametrize("subprotocol", ["hubbub.v1.json", "hubbub.v1.msgpack"])
async def test_follow_post_edit_like_delete_arrive_live(connect: Connect, subprotocol: str) -> None:
    alice = await connect("alice", subprotocol=subprotocol)
    alice_phone = await connect("alice", subprotocol="hubbub.v1.json")
    bob = await connect("bob", subprotocol=subprotocol)
    carol = await connect("carol")
    await alice.call("follow", user="bob")

    post = await bob.call("post", text="hello #Hubbub from @alice")
    for device in (alice, alice_phone):
        inserted = await device.next_event("feed.insert")
        assert inserted.data["id"] == post["id"]
        assert inserted.data["tags"] == ["hubbub"]
        assert inserted.data["mentions"] == ["alice"]
        mention = await device.next_event("notification")
        assert mention.data["notification"]["kind"] == "mention"
        assert mention.data["notification"]["actor"] == "bob"

    await bob.call("edit", post=post["id"], text="hello again")
    for device in (alice, alice_phone):
        update = await device.next_event("post.update")
        assert update.data["id"] == post["id"]
        assert update.data["text"] == "hello again"

    await carol.call("like", post=post["id"])
    await alice.call("like", post=post["id"])
    for device in (alice, alice_phone):
        while True:
            counts = await device.next_event("post.update")
            if counts.data.get("likes") == 2:
                break

    await bob.call("delete", post=post["id"])
    for device in (alice, alice_phone):
        deleted = await device.next_event("post.delete")
        assert deleted.data == {"id": post["id"]}


async def test_replies_and_pages_say_whether_the_viewer_likes_a_post(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    post = await bob.call("post", text="like me")
    assert post["liked"] is False
    inserted = await alice.next_event("feed.insert")
    assert "liked" not in inserted.data  # events carry the same bytes to everyone
    await alice.call("like", post=post["id"])
    await bob.call("like", post=post["id"])
    await alice.call("unlike", post=post["id"])
    await bob.call("like", post=post["id"])  # idempotent: still liked once
    for viewer, liked in ((alice, False), (bob, True)):
        for op, args in (("feed.home", {}), ("feed.user", {"user": "bob"}), ("feed.public", {})):
            (shown,) = (await viewer.call(op, **args))["items"]
            assert (shown["liked"], shown["likes"]) == (liked, 1), (op, viewer)
    edited = await bob.call("edit", post=post["id"], text="liked by its author")
    assert edited["liked"] is True
    assert await bob.call("post.get", post=post["id"]) == edited
    assert (await alice.call("post.get", post=post["id"]))["liked"] is False
    await bob.call("delete", post=post["id"])
    for missing in (post["id"], post["id"] + 1000):
        refused = await alice.call_raw("post.get", post=missing)
        assert getattr(refused, "code", None) == "not_found"


async def test_like_counts_are_coalesced(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    post = await bob.call("post", text="like me")
    await alice.next_event("feed.insert")
    likers = [await connect(f"fan{i}") for i in range(5)]
    for fan in likers:
        await fan.call("like", post=post["id"])
    update = await alice.next_event("post.update")
    marker = await bob.call("post", text="after the likes")
    seen_likes = [update.data["likes"]]
    while True:
        event = await alice.next_event("post.update", "feed.insert")
        if event.type == "feed.insert" and event.data["id"] == marker["id"]:
            break
        seen_likes.append(event.data["likes"])
    assert seen_likes[-1] == 5
    assert len(seen_likes) < 5


async def test_reply_notification_and_thread_stream(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    watcher = await connect("carol")
    root = await alice.call("post", text="a question")
    await watcher.call("subscribe", stream=f"thread:{root['id']}")
    reply = await bob.call("post", text="an answer", reply_to=root["id"])
    assert reply["reply_to"] == root["id"] and reply["root"] == root["id"]

    note = await alice.next_event("notification")
    assert note.data["notification"]["kind"] == "reply"
    assert note.data["notification"]["post"] == reply["id"]
    assert note.data["unread"] == 1
    streamed = await watcher.next_event("stream.insert")
    assert streamed.data["stream"] == f"thread:{root['id']}"
    assert streamed.data["post"]["id"] == reply["id"]

    page = await alice.call("notifications")
    assert page["unread"] == 1 and page["items"][0]["kind"] == "reply"
    assert (await alice.call("notifications.read"))["unread"] == 0
    replies = await alice.call("feed.replies", post=root["id"])
    assert [p["id"] for p in replies["items"]] == [reply["id"]]


async def test_public_and_hashtag_streams(connect: Connect) -> None:
    reader = await connect("reader")
    author = await connect("author")
    await reader.call("subscribe", stream="public")
    await reader.call("subscribe", stream="tag:python")
    post = await author.call("post", text="#Python is fun")
    streams = set()
    for _ in range(2):
        event = await reader.next_event("stream.insert")
        assert event.data["post"]["id"] == post["id"]
        streams.add(event.data["stream"])
    assert streams == {"public", "tag:python"}
    tagged = await reader.call("feed.hashtag", tag="python")
    assert [p["id"] for p in tagged["items"]] == [post["id"]]


async def test_follow_notification_and_pages(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    note = await bob.next_event("notification")
    assert note.data["notification"]["kind"] == "follow"
    followers = await bob.call("followers", user="bob")
    assert [p["id"] for p in followers["items"]] == ["alice"]
    following = await alice.call("following", user="alice")
    assert [p["id"] for p in following["items"]] == ["bob"]
    profile = await alice.call("profile.update", name="Alice A.", bio="hi")
    assert profile["name"] == "Alice A." and profile["following"] == 1
    own = await alice.call("post", text="mine")
    theirs = await bob.call("post", text="theirs")
    home = await alice.call("feed.home")
    assert [p["id"] for p in home["items"]] == [theirs["id"], own["id"]]
    await alice.call("unfollow", user="bob")
    hidden = await bob.call("post", text="not for alice")
    marker = await alice.call("post", text="marker")
    seen = []
    while not seen or seen[-1] != marker["id"]:
        seen.append((await alice.next_event("feed.insert")).data["id"])
    assert seen == [own["id"], theirs["id"], marker["id"]]
    assert hidden["id"] not in seen


async def test_presence_online_and_offline_after_grace(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    assert (await alice.call("presence", users=["bob", "nobody"]))["online"] == ["bob"]
    await bob.close()
    offline = await alice.next_event("presence")
    assert offline.data == {"user": "bob", "online": False}
    assert offline.cursor is None
    await connect("bob")
    online = await alice.next_event("presence")
    assert online.data == {"user": "bob", "online": True}


@pytest.mark.node_settings(presence_grace=30.0)
async def test_quick_reconnect_does_not_flap(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    await bob.close()
    await connect("bob")
    marker = await alice.call("post", text="marker")
    event = await alice.next_event("presence", "feed.insert")
    assert event.type == "feed.insert" and event.data["id"] == marker["id"]
