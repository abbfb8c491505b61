"""Resume after a cut: exactly the missed updates, in order, once — or an explicit resync."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.node import Node
from hub.tokens import issue_token
from tests.hub.conftest import SECRET, Connect
from tests.hub.wsclient import WsClient


async def test_resume_replays_exactly_what_was_missed(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    await bob.call("post", text="seen live")
    await alice.next_event("feed.insert")
    cursor = alice.cursor
    assert cursor is not None
    await alice.close()

    missed = [await bob.call("post", text=f"missed {i}") for i in range(3)]
    await bob.call("edit", post=missed[0]["id"], text="missed 0, edited")

    again = await connect("alice")
    result = await again.call("resume", cursor=cursor)
    assert result["replayed"] == 3
    replayed = [await again.next_event() for _ in range(3)]
    # the edit scrubbed the first post's creation: it is inserted at the edit's cursor
    assert [(e.type, e.data["id"], e.data["text"]) for e in replayed] == [
        ("feed.insert", missed[1]["id"], "missed 1"),
        ("feed.insert", missed[2]["id"], "missed 2"),
        ("feed.insert", missed[0]["id"], "missed 0, edited"),
    ]
    cursors = [int(e.cursor or 0) for e in replayed]
    assert cursors == sorted(cursors) and cursors[0] > int(cursor)
    assert result["cursor"] == replayed[-1].cursor

    live = await bob.call("post", text="live again")
    event = await again.next_event()
    assert (event.type, event.data["id"]) == ("feed.insert", live["id"])


async def test_resume_from_the_head_replays_nothing(connect: Connect) -> None:
    alice = await connect("alice")
    assert (await alice.call("resume", cursor=alice.cursor or "0"))["replayed"] == 0


async def test_resume_covers_notifications_and_subscribed_streams(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    cursor = alice.cursor or "0"
    await alice.close()
    await bob.call("follow", user="alice")
    tagged = await bob.call("post", text="#news today")

    again = await connect("alice")
    await again.call("subscribe", stream="tag:news")
    result = await again.call("resume", cursor=cursor)
    assert result["replayed"] == 2
    follow = await again.next_event()
    streamed = await again.next_event()
    assert follow.type == "notification" and follow.data["notification"]["kind"] == "follow"
    assert streamed.type == "stream.insert" and streamed.data["post"]["id"] == tagged["id"]


@pytest.mark.node_settings(retention_seconds=1, retention_per_log=1)
async def test_cursor_older_than_the_window_gets_resync(connect: Connect, node: Node) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    cursor = alice.cursor or "0"
    await alice.close()
    for i in range(3):
        await bob.call("post", text=f"post {i}")
    assert await node.changelog.prune(int(time.time() * 1000) + 60_000) > 0

    again = await connect("alice")
    result = await again.call("resume", cursor=cursor)
    assert result.get("resync") is True
    event = await again.next_event()
    assert event.type == "resync" and event.cursor is None


@pytest.mark.parametrize("cursor", ["999999999", "not-a-cursor"])
async def test_unknown_cursor_gets_resync(connect: Connect, cursor: str) -> None:
    alice = await connect("alice")
    assert (await alice.call("resume", cursor=cursor)).get("resync") is True
    assert (await alice.next_event()).type == "resync"


async def test_auth_with_a_cursor_replays_before_live_and_the_reply(
    connect: Connect, node: Node
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    await alice.call("subscribe", stream="tag:cats")
    cursor = alice.cursor or "0"
    await alice.close()
    missed = [await bob.call("post", text=f"missed {i} #cats") for i in range(2)]

    again = await WsClient.open(f"ws://127.0.0.1:{node.port}/")
    token = issue_token("alice", SECRET)
    pending = asyncio.ensure_future(
        again.call("auth", token=token, cursor=cursor, streams=["tag:cats"])
    )
    live = await bob.call("post", text="live #cats")
    result = await pending
    assert result["replayed"] in {4, 6}  # the live post may land before or after the auth
    events = [await again.next_event() for _ in range(6)]
    assert [(e.type, e.data.get("id") or e.data["post"]["id"]) for e in events] == [
        ("feed.insert", missed[0]["id"]),
        ("stream.insert", missed[0]["id"]),
        ("feed.insert", missed[1]["id"]),
        ("stream.insert", missed[1]["id"]),
        ("feed.insert", live["id"]),
        ("stream.insert", live["id"]),
    ]
    await again.close()
