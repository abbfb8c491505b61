"""Redis killed and restarted under two nodes: nothing acknowledged is lost, live resumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.cluster.conftest import Cluster, Inbox
from tests.hub.wsclient import RequestFailed


async def post_when_available(inbox: Inbox, text: str) -> Mapping[str, Any]:
    """Post, retrying while the hub answers ``unavailable`` (Redis still coming back)."""
    for _ in range(200):
        try:
            return await inbox.client.call("post", text=text)
        except RequestFailed as exc:
            assert exc.reply.code == "unavailable", exc
            await inbox.client.call("ping")  # a round trip between attempts, no timer
    raise AssertionError("posting never became available again")


def authors_texts(inbox: Inbox) -> list[str]:
    """Texts of the home-feed inserts a client received."""
    return [e.data["text"] for e in inbox.of("feed.insert")]


async def test_redis_restart_loses_nothing_and_live_updates_resume(cluster: Cluster) -> None:
    nodes = cluster.start_nodes(2)
    ann = await cluster.connect("ann", 0)
    cat = await cluster.connect("cat", 0)
    bob = await cluster.connect("bob", 1)
    for follower in (ann, cat):
        await follower.client.call("follow", user="bob")
    await post_when_available(bob, "before")
    await ann.wait_for(lambda events: authors_texts(ann) == ["before"])
    await cat.wait_for(lambda events: authors_texts(cat) == ["before"])
    cat_cursor = cat.client.cursor
    await cat.client.close()  # cat is away during the outage and resumes afterwards
    last = await bob.client.call("post", text="acknowledged just before the crash")

    cluster.redis.stop(kill=True)
    for node in nodes:
        await node.wait_readyz(503)
    failed = await bob.client.call_raw("post", text="during the outage")
    assert getattr(failed, "code", None) == "unavailable"
    assert "time" in await ann.client.call("ping")  # connections stay open

    cluster.redis.restart()
    for node in nodes:
        await node.wait_readyz(200)
    await post_when_available(bob, "after")
    await ann.wait_for(lambda events: "after" in authors_texts(ann))
    assert authors_texts(ann) == ["before", "acknowledged just before the crash", "after"]

    home = await ann.client.call("feed.home")
    assert [p["text"] for p in home["items"]] == [
        "after",
        "acknowledged just before the crash",
        "before",
    ]
    assert home["items"][1]["id"] == last["id"]

    back = await cluster.connect("cat", 1)
    result = await back.client.call("resume", cursor=cat_cursor)
    assert result["replayed"] == 2 and "resync" not in result
    await back.wait_for(lambda events: len(back.of("feed.insert")) == 2)
    assert authors_texts(back) == ["acknowledged just before the crash", "after"]
