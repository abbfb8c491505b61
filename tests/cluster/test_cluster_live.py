"""Three nodes on one Redis: live updates reach every follower on every node; presence agrees."""

from __future__ import annotations

import itertools

from protocol import Event
from tests.cluster.conftest import Cluster, Inbox

USERS = {"ann": [0], "bob": [1], "cat": [2], "dan": [0, 1]}
"""Who connects to which nodes (dan twice)."""


def cursors_increase(inbox: Inbox) -> bool:
    """Durable events arrive in strictly increasing cursor order (ties: one change)."""
    seqs = [int(e.cursor) for e in inbox.events if e.cursor is not None]
    return all(a <= b for a, b in itertools.pairwise(seqs))


def inserts_by(events: list[Event]) -> set[str]:
    """Authors of the home-feed inserts among ``events``."""
    return {e.data["author"] for e in events if e.type == "feed.insert"}


async def test_every_update_reaches_every_follower_on_every_node(cluster: Cluster) -> None:
    cluster.start_nodes(3)
    inboxes = {u: [await cluster.connect(u, n) for n in nodes] for u, nodes in USERS.items()}
    for user, (first, *_) in inboxes.items():
        for other in USERS:
            if other != user:
                await first.client.call("follow", user=other)
    posts = {}
    for user, (first, *_) in inboxes.items():
        posts[user] = await first.client.call("post", text=f"hello from {user} #cluster")
    everyone = [inbox for connections in inboxes.values() for inbox in connections]
    for inbox in everyone:
        await inbox.wait_for(lambda events: inserts_by(events) == set(USERS))
        assert len(inbox.of("feed.insert")) == len(USERS)  # once each

    ann = inboxes["ann"][0].client
    edited = await ann.call("edit", post=posts["ann"]["id"], text="edited #cluster")
    await inboxes["bob"][0].client.call("like", post=posts["ann"]["id"])

    def saw_edit_and_like(events: list[Event]) -> bool:
        updates = [e.data for e in events if e.type == "post.update"]
        return any(u.get("text") == edited["text"] for u in updates) and any(
            u.get("likes") == 1 for u in updates
        )

    for inbox in everyone:
        await inbox.wait_for(saw_edit_and_like)
        assert cursors_increase(inbox)
    await inboxes["ann"][0].wait_for(
        lambda events: any(
            e.type == "notification" and e.data["notification"]["kind"] == "like" for e in events
        )
    )


async def test_presence_agrees_on_every_node(cluster: Cluster) -> None:
    cluster.start_nodes(3)
    dan = [await cluster.connect("dan", n) for n in (1, 2)]
    watchers = [await cluster.connect("ann", n) for n in range(3)]
    # one follow, on node 0, re-keys ann's sessions on every node (presence goes to f:dan)
    await watchers[0].client.call("follow", user="dan")
    await dan[0].client.call("post", text="hi ann")
    for watcher in watchers:  # the follow reached every node: the post arrives everywhere
        await watcher.wait_for(lambda events: inserts_by(events) == {"dan"})
    for watcher in watchers:
        result = await watcher.client.call("presence", users=["ann", "dan", "nobody"])
        assert result["online"] == ["ann", "dan"]

    await dan[0].client.close()  # dan is still connected to node 2
    await dan[1].client.call("ping")
    for watcher in watchers:
        assert (await watcher.client.call("presence", users=["dan"]))["online"] == ["dan"]

    await dan[1].client.close()
    for watcher in watchers:
        await watcher.wait_for(
            lambda events: any(e.type == "presence" and not e.data["online"] for e in events)
        )
        assert (await watcher.client.call("presence", users=["dan"]))["online"] == []
