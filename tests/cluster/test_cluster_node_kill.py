"""A node SIGKILLed: its users go offline within the TTL and resume on another node."""

from __future__ import annotations

from tests.cluster.conftest import PRESENCE_TTL, Cluster
from tests.hub.wsclient import WAIT

OFFLINE_WITHIN = PRESENCE_TTL + PRESENCE_TTL / 3 + 2.0
"""The documented bound (ttl + one heartbeat) plus slack for a loaded machine."""


async def test_killed_node_users_go_offline_and_resume_elsewhere(cluster: Cluster) -> None:
    doomed = cluster.start_nodes(2)[0]
    ann = await cluster.connect("ann", 0)
    bob = await cluster.connect("bob", 1)
    await bob.client.call("follow", user="ann")
    await ann.client.call("follow", user="bob")
    await bob.client.call("post", text="seen live")
    await ann.wait_for(lambda events: len(ann.of("feed.insert")) == 1)
    cursor = ann.client.cursor

    doomed.kill()
    await bob.wait_for(
        lambda events: any(
            e.type == "presence" and e.data == {"user": "ann", "online": False} for e in events
        ),
        wait=OFFLINE_WITHIN,
    )
    assert (await bob.client.call("presence", users=["ann"]))["online"] == []
    missed = await bob.client.call("post", text="missed while ann was away")

    again = await cluster.connect("ann", 1)
    result = await again.client.call("resume", cursor=cursor)
    assert result["replayed"] == 1 and result["cursor"] is not None
    await again.wait_for(lambda events: len(again.of("feed.insert")) == 1, wait=WAIT)
    assert again.of("feed.insert")[0].data["id"] == missed["id"]
    await bob.wait_for(
        lambda events: any(
            e.type == "presence" and e.data == {"user": "ann", "online": True} for e in events[-3:]
        )
    )
    assert (await bob.client.call("presence", users=["ann"]))["online"] == ["ann"]
    await bob.client.call("post", text="live again")
    await again.wait_for(lambda events: len(again.of("feed.insert")) == 2)
