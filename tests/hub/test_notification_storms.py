"""Notifications cannot be farmed, through a real node on both backends.

A like/unlike or follow/unfollow storm notifies once (one group row, one event); a new
actor moves the group up, named first; the node's prune round trims each user's groups.
Events arrive in cursor order, so a later notification marks the end of what an earlier
write could have pushed (no waiting for silence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from hub.config import Settings
from tests.hub.conftest import Connect, make_settings
from tests.hub.wsclient import WAIT, WsClient
from tests.redisproc import RedisServer

TOGGLES = 50
FAST = {"write_rate": 1000.0, "write_burst": 1000.0, "request_rate": 1000.0}
FAST |= {"request_burst": 1000.0}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for this module's Redis-backed nodes."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), fsync="no").start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer) -> Settings:
    """Node settings on each backend (Redis emptied first); ``node_settings`` overrides."""
    marker = request.node.get_closest_marker("node_settings")
    overrides: dict[str, Any] = {**FAST, **(marker.kwargs if marker else {})}
    if request.param == "redis":
        with redis.Redis.from_url(redis_server.url) as client:
            client.flushall()
        overrides["redis_url"] = redis_server.url
    return make_settings(tmp_path / "data", **overrides)


async def notifications_until(client: WsClient, kind: str, actor: str) -> list[Mapping[str, Any]]:
    """The notifications pushed to ``client`` up to and including one of ``kind`` by
    ``actor`` (the marker a test sends last)."""
    pushed: list[Mapping[str, Any]] = []
    while True:
        event = await client.next_event("notification")
        pushed.append(event.data["notification"])
        if (pushed[-1]["kind"], pushed[-1]["actor"]) == (kind, actor):
            return pushed


async def test_a_like_storm_notifies_once(connect: Connect) -> None:
    alice, bob, carol = [await connect(user) for user in ("alice", "bob", "carol")]
    post = await alice.call("post", text="like me")
    for _ in range(TOGGLES):
        await bob.call("like", post=post["id"])
        await bob.call("unlike", post=post["id"])
    await carol.call("like", post=post["id"])  # the marker: joins bob's group
    pushed = await notifications_until(alice, "like", "carol")
    assert [(n["actors"], n["others"]) for n in pushed] == [(["bob"], 0), (["carol", "bob"], 1)]
    page = await alice.call("notifications")
    assert [(n["kind"], n["post"], n["actor"], n["others"]) for n in page["items"]] == [
        ("like", post["id"], "carol", 1)
    ]
    assert page["items"][0]["id"] == pushed[-1]["id"] and page["unread"] == 1


async def test_a_follow_storm_notifies_once(connect: Connect) -> None:
    alice, bob, carol = [await connect(user) for user in ("alice", "bob", "carol")]
    post = await alice.call("post", text="hello")
    for _ in range(TOGGLES):
        await bob.call("follow", user="alice")
        await bob.call("unfollow", user="alice")
    await carol.call("like", post=post["id"])  # the marker
    pushed = await notifications_until(alice, "like", "carol")
    assert [(n["kind"], n["actor"]) for n in pushed] == [("follow", "bob"), ("like", "carol")]
    page = await alice.call("notifications")
    assert [(n["kind"], n["actors"], n["others"]) for n in page["items"]] == [
        ("like", ["carol"], 0),
        ("follow", ["bob"], 0),
    ]
    assert (await alice.call("notifications.read", up_to=page["items"][0]["id"]))["unread"] == 0


class _Pruned(logging.Handler):
    """Sets ``done`` once the node logs a notification prune that removed something."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.done = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "pruned %d notifications" and record.args and record.args[0]:
            self.done.set()


@pytest.mark.node_settings(prune_interval=0.05, notifications_per_user=2)
async def test_the_prune_round_keeps_the_newest_groups(connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    posts = [await alice.call("post", text=f"post {n}") for n in range(3)]
    node_log = logging.getLogger("hub.node")
    pruned, level = _Pruned(), node_log.level
    node_log.addHandler(pruned)
    node_log.setLevel(logging.DEBUG)
    try:
        for post in posts:
            await bob.call("like", post=post["id"])
        async with asyncio.timeout(WAIT):
            await pruned.done.wait()
    finally:
        node_log.removeHandler(pruned)
        node_log.setLevel(level)
    page = await alice.call("notifications")
    assert [n["post"] for n in page["items"]] == [posts[2]["id"], posts[1]["id"]]
    assert page["unread"] == 2
