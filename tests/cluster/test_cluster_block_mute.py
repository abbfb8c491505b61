"""Blocks and mutes across two nodes over Redis: made on one node, in effect on the other
at once (live pushes, replays after a reconnect, refusals), with no store read per push."""

from __future__ import annotations

from protocol import Event
from tests.cluster.conftest import Cluster


def texts(events: list[Event], kind: str = "stream.insert") -> list[str]:
    """The texts of the posts the events of ``kind`` carry, in arrival order."""
    stream = kind == "stream.insert"
    return [(e.data["post"] if stream else e.data)["text"] for e in events if e.type == kind]


async def test_a_block_on_one_node_holds_on_the_other_and_after_a_reconnect(
    cluster: Cluster,
) -> None:
    cluster.start_nodes(2)
    ann = await cluster.connect("ann", 0)
    ann_phone = await cluster.connect("ann", 1)
    mal = await cluster.connect("mal", 1)
    cat = await cluster.connect("cat", 0)
    for inbox in (ann, ann_phone, mal):
        await inbox.client.call("subscribe", stream="public")
    await mal.client.call("follow", user="ann")
    await ann.client.call("follow", user="mal")

    await ann.client.call("block", user="mal")
    for device in (ann, ann_phone):
        await device.wait_for(lambda events: any(e.type == "relation" for e in events))
    assert [e.data for e in ann_phone.of("relation")] == [{"user": "mal", "blocked": True}]
    assert mal.of("relation") == []  # the blocked user is told nothing

    await mal.client.call("post", text="mal on node 1")
    await ann.client.call("post", text="ann on node 0")
    await cat.client.call("post", text="cat marker")
    sides = ((ann, "ann on node 0"), (ann_phone, "ann on node 0"), (mal, "mal on node 1"))
    for inbox, own in sides:
        await inbox.wait_for(lambda events: "cat marker" in texts(events))
        assert texts(inbox.events) == [own, "cat marker"]
    assert "ann on node 0" not in texts(mal.events, "feed.insert")  # the follow ended

    failed = await mal.client.call_raw("follow", user="ann")
    assert getattr(failed, "code", None) == "blocked"

    # The phone reconnects to the other node and resumes: still nothing from mal.
    cursor = ann_phone.client.cursor
    await ann_phone.client.close()
    await mal.client.call("post", text="mal while ann was away")
    await cat.client.call("post", text="cat while ann was away")
    back = await cluster.connect("ann", 0, cursor=cursor, streams=["public"])
    await cat.client.call("post", text="cat after")
    await back.wait_for(lambda events: "cat after" in texts(events))
    assert texts(back.events) == ["cat while ann was away", "cat after"]


async def test_a_mute_on_one_node_hides_on_the_other_and_ends(cluster: Cluster) -> None:
    cluster.start_nodes(2)
    ann = await cluster.connect("ann", 0)
    bob = await cluster.connect("bob", 1)
    cat = await cluster.connect("cat", 1)
    await ann.client.call("follow", user="bob")
    await ann.client.call("follow", user="cat")
    ann_phone = await cluster.connect("ann", 1)
    await ann_phone.client.call("mute", user="bob")
    await ann.wait_for(lambda events: any(e.type == "relation" for e in events))

    await bob.client.call("post", text="bob @ann")
    await cat.client.call("post", text="cat marker")
    await ann.wait_for(lambda events: "cat marker" in texts(events, "feed.insert"))
    assert texts(ann.events, "feed.insert") == ["cat marker"]
    assert ann.of("notification") == []
    assert bob.of("relation") == []

    await ann.client.call("unmute", user="bob")
    await ann_phone.wait_for(lambda events: len(events_of(events, "relation")) == 2)
    await bob.client.call("post", text="bob heard again")
    await ann.wait_for(lambda events: "bob heard again" in texts(events, "feed.insert"))


def events_of(events: list[Event], kind: str) -> list[Event]:
    """The events of one type."""
    return [e for e in events if e.type == kind]
