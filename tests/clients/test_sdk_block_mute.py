"""Block and mute through the SDK against a real hub: calls, pages, typed events and
errors, the live feed view on another device, and the connection cap (4004)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from clients import BadRequest, Blocked, Conflict, FeedView, Relation, RelationChanged
from hub.node import Node
from tests.clients.conftest import Open, expect, token
from tests.clients.test_sdk_resume import WAIT, converged
from tests.hub.conftest import Connect, connect
from tests.waiting import until

__all__ = ["connect"]  # the raw-protocol client fixture, used below


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_block_and_mute_calls_pages_events_and_errors(sdk: Open, codec: str) -> None:
    alice = await sdk("alice", codec=codec)
    mallory = await sdk("mallory", codec=codec)
    events = alice.events()
    await mallory.follow("alice")
    post = await alice.post("hello")

    await alice.block("mallory")
    assert await expect(events, RelationChanged) == RelationChanged(None, "mallory", True)
    for refused in (mallory.like(post.id), mallory.reply(post.id, "hi"), mallory.follow("alice")):
        with pytest.raises(Blocked) as blocked:
            await refused
        assert blocked.value.code == "blocked"
    assert (await alice.blocks()).items == (Relation("mallory"),)
    await alice.unblock("mallory")
    unblocked = await expect(events, RelationChanged)
    assert (unblocked.user, unblocked.blocked, unblocked.hides) == ("mallory", False, False)
    assert (await alice.blocks()).items == ()

    for user in ("bob", "carol", "dave", "erin"):  # users exist once they signed in
        await (await sdk(user)).close()
    soon = int(time.time() * 1000) + 60_000
    assert await alice.mute("bob") == Relation("bob", None)
    muted = await expect(events, RelationChanged)
    assert (muted.muted, muted.until, muted.hides) == (True, None, True)
    assert await alice.mute("carol", soon) == Relation("carol", soon)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert (await alice.mute("dave", tomorrow)).until == round(tomorrow.timestamp() * 1000)
    before = int(time.time() * 1000)
    until = (await alice.mute("erin", timedelta(hours=1))).until
    assert until is not None and before + 3_600_000 <= until <= before + 3_700_000
    page = await alice.mutes(limit=2)
    assert [m.user for m in page.items] == ["erin", "dave"] and page.next is not None
    assert (await alice.mutes(page.next)).items == (Relation("carol", soon), Relation("bob"))
    await alice.unmute("bob")
    changes = [await expect(events, RelationChanged) for _ in range(4)]
    assert changes[0] == RelationChanged(None, "carol", muted=True, until=soon)
    assert [(c.user, c.muted, c.hides) for c in changes[1:]] == [
        ("dave", True, True),
        ("erin", True, True),
        ("bob", False, False),
    ]
    assert [m.user for m in (await alice.mutes()).items] == ["erin", "dave", "carol"]
    with pytest.raises(BadRequest):
        await alice.mute("bob", 1)  # in the past
    with pytest.raises(Conflict):
        await alice.block("alice")
    with pytest.raises(TypeError):
        await alice.mute("bob", True)  # type: ignore[arg-type]
    assert await alice.ping()  # the connection survived every error


async def test_the_feed_view_hides_whom_another_device_blocks_or_mutes(sdk: Open) -> None:
    phone = await sdk("alice")
    laptop = await sdk("alice")
    bob, carol, dan = await sdk("bob"), await sdk("carol"), await sdk("dan")
    for user in ("bob", "carol", "dan"):
        await phone.follow(user)
    for author in (bob, carol, dan, bob):
        await author.post(f"from {author.me.id}")
    view = await FeedView(phone, limit=3).start()  # the page is full: one post is left out
    await view.wait_for(lambda v: [p.author for p in v.posts] == ["bob", "dan", "carol"], WAIT)
    assert view.online == {"bob", "carol", "dan"}

    await laptop.mute("bob")
    await view.wait_for(lambda v: "bob" not in {p.author for p in v.posts}, WAIT)
    await converged(view, phone)  # refilled from the hub: carol's and dan's posts
    assert "bob" in view.online  # a mute hides posts, not presence

    await laptop.unmute("bob")
    await view.wait_for(lambda v: v.posts and v.posts[0].author == "bob", WAIT)
    await converged(view, phone)

    await laptop.block("carol")
    await view.wait_for(lambda v: "carol" not in {p.author for p in v.posts}, WAIT)
    assert "carol" not in view.following and "carol" not in view.online
    await converged(view, phone)


@pytest.mark.node_settings(connections_per_user=1)
async def test_too_many_connections_is_retried_with_backoff(
    sdk: Open, node: Node, connect: Connect
) -> None:
    alice = await sdk("alice")
    holder = await connect()  # not signed in yet: holds no connection of alice's
    node.ready = False  # alice's reconnects are refused (503) until the holder signs in
    for session in node.local_sessions("alice"):
        session.connection.transport.abort()
    await until(lambda: not node.local_sessions("alice"), "the hub saw alice's drop")
    await holder.call("auth", token=token("alice"))  # the one connection alice may hold
    node.ready = True

    # conflict, close 4004, backoff, again ...
    await until(lambda: alice.connection.stats.refused >= 2, "two refused reconnects")
    assert not alice.connection.closed and not alice.connection.connected
    await holder.close()
    assert await alice.ping() > 0  # waits for the reconnect that now succeeds
    assert alice.connection.stats.reconnects == 1
