"""The SDK across network trouble: drops, slow closes, resync, rejected tokens."""

from __future__ import annotations

import asyncio

import pytest

from clients import Client, FeedInsert, FeedView, Unauthorized, connect
from hub.node import Node
from protocol.errors import CloseCode
from tests.clients.conftest import FAST, Open, token

WAIT = 10.0


async def converged(view: FeedView, fresh: Client) -> None:
    """Wait until the live view equals a fresh first-page load."""
    expected = list((await fresh.home(limit=view.limit)).items)
    await view.wait_for(lambda v: v.posts == expected, WAIT)


async def bob_writes(bob: Client, posts: list[int], n: int, tag: str) -> None:
    """Post ``n`` posts, edit one, like one and delete one of the earlier ones."""
    for i in range(n):
        posts.append((await bob.post(f"{tag} {i}")).id)
    await bob.edit(posts[-1], f"{tag} edited")
    await bob.like(posts[-2])
    await bob.delete(posts.pop(0))


def inserts(client: Client, seen: list[int]) -> None:
    """Record the ids of every FeedInsert the client delivers."""
    client.connection.add_listener(
        lambda e: seen.append(e.post.id) if isinstance(e, FeedInsert) else None
    )


async def test_dropped_connection_resumes_without_gaps_or_repeats(sdk: Open, node: Node) -> None:
    alice = await sdk("alice")
    bob = await sdk("bob")
    await alice.follow("bob")
    posts = [(await bob.post("before")).id]
    seen: list[int] = []
    inserts(alice, seen)
    view = await FeedView(alice, limit=5).start()
    await view.wait_for(lambda v: v.posts[0].id == posts[0], WAIT)

    node.ready = False  # the reconnect is refused (503) until the missed writes are done
    for session in node.local_sessions("alice"):
        session.connection.transport.abort()
    await bob_writes(bob, posts, 6, "missed")
    node.ready = True
    await bob_writes(bob, posts, 6, "racing")  # while alice reconnects and resumes
    await converged(view, alice)

    assert alice.connection.stats.resumes >= 1 and alice.connection.stats.resyncs == 0
    assert sorted(seen) == sorted(set(seen)), "an insert was delivered twice"
    everything = [p.id for p in (await alice.timeline("bob", limit=100)).items]
    assert set(everything) <= set(seen), "an insert was missed"


async def test_slow_close_is_followed_by_a_resume(sdk: Open, node: Node) -> None:
    alice = await sdk("alice")
    bob = await sdk("bob")
    await alice.follow("bob")
    await bob.post("first")
    seen: list[int] = []
    inserts(alice, seen)
    view = await FeedView(alice).start()
    for session in node.local_sessions("alice"):
        session.close(CloseCode.SLOW, "test")
    posts: list[int] = []
    await bob_writes(bob, posts, 4, "after slow")
    await converged(view, alice)
    assert alice.connection.stats.last_close_code == CloseCode.SLOW
    assert alice.connection.stats.reconnects == 1
    assert sorted(seen) == sorted(set(seen)) and set(posts) <= set(seen)


@pytest.mark.node_settings(retention_seconds=0, retention_per_log=1)
async def test_resync_reloads_the_view(sdk: Open, node: Node) -> None:
    alice = await sdk("alice")
    bob = await sdk("bob")
    await alice.follow("bob")
    await bob.post("first")
    view = await FeedView(alice, limit=3).start()
    await view.wait_for(lambda v: len(v.posts) == 1, WAIT)
    node.ready = False
    for session in node.local_sessions("alice"):
        session.connection.transport.abort()
    await bob_writes(bob, [], 5, "gone")
    assert await node.changelog.prune(2**62) > 0
    node.ready = True
    await converged(view, alice)
    assert alice.connection.stats.resyncs == 1


async def test_a_rejected_token_is_not_retried(sdk: Open, url: str, node: Node) -> None:
    with pytest.raises(Unauthorized):
        await connect(url, token="not-a-token", **FAST)
    alice = await sdk("alice")
    alice.connection.token = token("alice") + "x"  # as if it expired meanwhile
    for session in node.local_sessions("alice"):
        session.connection.transport.abort()
    with pytest.raises(Unauthorized):
        async with asyncio.timeout(WAIT):
            async for _ in alice.events():
                pass
    assert alice.connection.closed and alice.connection.stats.reconnects == 0
    with pytest.raises(Unauthorized):
        await alice.ping()


async def test_the_feed_view_shows_this_users_own_likes(sdk: Open) -> None:
    alice = await sdk("alice")
    bob = await sdk("bob")
    await alice.follow("bob")
    liked, other = (await bob.post("like me")).id, (await bob.post("not me")).id
    view = await FeedView(alice, limit=5).start()
    await view.wait_for(lambda v: [p.id for p in v.posts] == [other, liked], WAIT)
    assert not any(p.liked for p in view.posts)
    await alice.like(liked)
    await alice.like(other)
    await alice.unlike(other)
    await view.wait_for(lambda v: [p.liked for p in v.posts] == [False, True], WAIT)
    await converged(view, alice)  # the same as a fresh page: liked as the hub says
    assert [p.liked for p in (await bob.home()).items] == [False, False]
